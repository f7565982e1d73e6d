#!/usr/bin/perl
# Net::Proxy 0.12 (the Perl original nproxy rebuilds) as a tcp -> tcp relay.
# Usage: perl netproxy.pl LISTEN_PORT TARGET_PORT
# The harness sets PERL5LIB to the files of Debian's libnet-proxy-perl.
use strict;
use warnings;
use Net::Proxy;

my ( $listen, $target ) = @ARGV;
die "usage: $0 LISTEN_PORT TARGET_PORT\n" unless $target;

# Net::Proxy leaves SIGPIPE at Perl's default, so the first write to a peer
# that has gone kills the whole relay (iperf3's end of test does it). Anyone
# running it for real ignores the signal; so do we.
$SIG{PIPE} = 'IGNORE';

Net::Proxy->set_verbosity(0);
Net::Proxy->new(
    {   in  => { type => 'tcp', host => '127.0.0.1', port => $listen },
        out => { type => 'tcp', host => '127.0.0.1', port => $target },
    }
)->register();
Net::Proxy->mainloop();
