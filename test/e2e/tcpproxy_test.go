package e2e

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// tcpProxy stands between the server and PostgreSQL so that a test can take the database away
// the ways production does: down (connections reset, new ones refused) or blackholed (the
// network drops every packet: connections open but nothing ever comes back).
type tcpProxy struct {
	t      testing.TB
	target string
	addr   string

	mu        sync.Mutex
	ln        net.Listener
	blackhole bool
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

// proxiedURL is dbURL with its host replaced by the proxy's.
func (p *tcpProxy) proxiedURL(dbURL string) string {
	p.t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.addr
	return u.String()
}

func dbHost(t testing.TB, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.handle(c) })
		}
	})
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) handle(client net.Conn) {
	if !p.track(client) {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	hole := p.blackhole
	p.mu.Unlock()
	if hole { // held open, never answered, until the test restores or closes the proxy
		return
	}
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(upstream) {
		_ = client.Close()
		_ = upstream.Close()
		return
	}
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				hole := p.blackhole
				p.mu.Unlock()
				if !hole { // a blackhole swallows what is already on the wire too
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
				}
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
	}
	p.wg.Go(func() { pipe(upstream, client) })
	pipe(client, upstream)
}

// closeConns resets every connection through the proxy.
func (p *tcpProxy) closeConns() {
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, as a crashed server's kernel sends
		}
		_ = c.Close()
		delete(p.conns, c)
	}
}

// down stops PostgreSQL as far as the server can tell: open connections are reset and new ones
// refused.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	p.closeConns()
}

// up brings it back on the same address.
func (p *tcpProxy) up() {
	p.t.Helper()
	p.mu.Lock()
	p.blackhole = false
	p.closeConns() // a blackhole's held connections are dead to their clients too
	running := p.ln != nil
	p.mu.Unlock()
	if running {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// hole drops every packet from now on, in both directions, on open and new connections.
func (p *tcpProxy) hole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = true
}
