package main

import (
	"fmt"
	"maps"
	"net"
	"strconv"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/balance"
)

// balanceParams are the keys of an out side that lists several servers;
// the other keys are each server's connector's, as for one server.
type balanceParams struct {
	Servers  []map[string]any `param:"servers,max=256"`
	Balance  string           `param:"balance,max=16"`
	Check    string           `param:"check,max=16"`
	Interval time.Duration    `param:"interval"`
	Rise     int              `param:"rise,min=1,max=100"`
	Fall     int              `param:"fall,min=1,max=100"`
}

var balanceKeys = []string{"servers", "balance", "check", "interval", "rise", "fall"}

// serverParams are a server's own keys besides its connector's.
type serverParams struct {
	Weight int `param:"weight,min=1,max=256"`
}

// buildOut makes the out connector: one, or a balance over the servers
// listed, each built from the out side's keys with its own host and port.
func buildOut(out map[string]any) (connectors.Out, error) {
	if _, several := out["servers"]; !several {
		return connectors.BuildOut("out", out)
	}
	base := maps.Clone(out)
	var bp balanceParams
	if err := connectors.Decode(&bp, takeKeys(base, balanceKeys), "'out' connector"); err != nil {
		return nil, err
	}
	servers := make([]balance.Server, len(bp.Servers))
	for i, sp := range bp.Servers {
		where := fmt.Sprintf("'out' connector: server #%d", i+1)
		params := maps.Clone(base)
		var own serverParams
		if w, ok := sp["weight"]; ok {
			if err := connectors.Decode(&own, map[string]any{"weight": w}, where); err != nil {
				return nil, err
			}
		}
		for k, v := range sp {
			if k != "weight" {
				params[k] = v
			}
		}
		o, err := connectors.BuildOut(fmt.Sprintf("out server #%d", i+1), params)
		if err != nil {
			return nil, err
		}
		host, _ := params["host"].(string)
		port, _ := strconv.Atoi(fmt.Sprint(params["port"]))
		servers[i] = balance.Server{Out: o, Weight: own.Weight, Host: host, Port: port,
			Name: net.JoinHostPort(host, strconv.Itoa(port))}
	}
	b, err := balance.New(servers, balance.Config{Balance: balance.Policy(bp.Balance), Check: bp.Check,
		Interval: bp.Interval, Rise: bp.Rise, Fall: bp.Fall})
	if err != nil {
		return nil, fmt.Errorf("'out' connector: %w", err)
	}
	return b, nil
}
