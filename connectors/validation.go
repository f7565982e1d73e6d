package connectors

import "sync"

// Validation remembers the outcome of a connector's Validate. The
// configuration loader validates a connector once, and Listen or Dial
// validate it again on every loop and for every connection: the checks
// (loading certificates, users and rules) must run once, and every caller
// must see the same error. Its zero value is ready to use.
type Validation struct {
	once sync.Once
	err  error
}

// Run runs steps in order, the first time it is called, stopping at the
// first that fails, and returns that error (nil if all passed), then and
// on every later call.
func (v *Validation) Run(steps ...func() error) error {
	v.once.Do(func() {
		for _, step := range steps {
			if v.err = step(); v.err != nil {
				return
			}
		}
	})
	return v.err
}
