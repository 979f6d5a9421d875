package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/betterkey/backend/adapters/connectapi"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// errUsage marks a malformed command line; main exits 2 for it, as flag does.
var errUsage = errors.New("usage")

const usageText = `usage: betterkeyctl [flags] <command> [args]

commands:
  user get <user-id>                    show an account
  user get-by-apple <issuer> <subject>  show the account of an Apple identity
  sessions list <user-id>               list an account's sessions, newest first
  sessions revoke-all <user-id>         revoke every active session of an account
  sessions revoke <user-id> <session-id> revoke one session of an account
  sessions revoke-everyone "revoke every session"
                                        emergency: revoke every session of every account
  grants revoke-smartcar <user-id>      disconnect an account's vehicles at Smartcar (needs re-auth)
  grants revoke-apple <user-id>         revoke an account's Sign in with Apple authorizations
  keys report                           show the key versions and the secrets each protects
  keys rotate                           add a key version that new seals use
  keys rewrap [-batch N]                move every stored secret to the latest key version,
                                        printing progress after each batch (N: 1-1000, default 250);
                                        runs until done or interrupted unless -timeout is given
  keys retire <min-version>             retire key versions below min-version once none is in use
  signing-key list                      list the session signing keys and their state
  signing-key rotate [-overlap D]       add a session signing key; the replaced keys verify for D
                                        after it signs (0s-1h, default one access-token lifetime;
                                        0s for a leaked key)

The admin token is read from the environment variable named by -token-env.

flags:
`

// options are the global flags.
type options struct {
	addr      string
	tokenEnv  string
	output    string
	protocol  string
	timeout   time.Duration
	plaintext bool
}

// run is the whole CLI behind main, callable from tests: parse, build a client, run one command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("betterkeyctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "http://127.0.0.1:8081", "admin API base URL (BETTERKEY_ADMIN_ADDR of the server)")
	fs.StringVar(&o.tokenEnv, "token-env", "BETTERKEY_ADMIN_TOKEN", "name of the environment variable holding the admin token")
	fs.StringVar(&o.output, "o", "text", "output format: text or json")
	fs.StringVar(&o.protocol, "protocol", "connect", "wire protocol: connect, grpc or grpcweb")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "deadline for the whole command (keys rewrap: none unless given)")
	fs.BoolVar(&o.plaintext, "allow-plaintext", false, "allow http:// to a non-loopback host (sends the token unencrypted)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("%w: -o must be text or json", errUsage)
	}
	cmd, err := command(fs.Args())
	if err != nil {
		fs.Usage()
		return err
	}
	if cmd.long && !flagSet(fs, "timeout") {
		o.timeout = 0 // a long job runs until it ends or is interrupted
	}
	client, err := newClient(o)
	if err != nil {
		return err
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	out := printer{w: stdout, json: o.output == "json"}
	if err := cmd.run(ctx, client, out); err != nil {
		return describe(strings.Join(fs.Args()[:min(2, fs.NArg())], " "), err)
	}
	return nil
}

// commandFunc runs one admin command and prints its result.
type commandFunc func(context.Context, adminv1connect.AdminServiceClient, printer) error

// cliCommand is a parsed command: what to run, and whether it is a long job that should not get
// the default deadline.
type cliCommand struct {
	run  commandFunc
	long bool
}

// command picks the command for the positional arguments, checking their count.
func command(args []string) (cliCommand, error) {
	if len(args) < 2 {
		return cliCommand{}, fmt.Errorf("%w: a command is required", errUsage)
	}
	name, rest := args[0]+" "+args[1], args[2:]
	switch name {
	case "keys rewrap":
		return rewrapCommand(rest)
	case "signing-key rotate":
		return signingKeyRotateCommand(rest)
	}
	want := map[string]int{
		"user get": 1, "user get-by-apple": 2, "sessions list": 1, "sessions revoke-all": 1, "sessions revoke": 2,
		"keys report": 0, "keys rotate": 0, "keys retire": 1, "signing-key list": 0,
		"sessions revoke-everyone": 1, "grants revoke-smartcar": 1, "grants revoke-apple": 1,
	}
	n, ok := want[name]
	if !ok {
		return cliCommand{}, fmt.Errorf("%w: unknown command %q", errUsage, name)
	}
	if len(rest) != n {
		return cliCommand{}, fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, name, n, len(rest))
	}
	switch name {
	case "user get":
		return cliCommand{run: getUser(&adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_UserId{UserId: rest[0]}})}, nil
	case "user get-by-apple":
		return cliCommand{run: getUser(&adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_Apple{
			Apple: &adminv1.AppleIdentity{Issuer: rest[0], Subject: rest[1]},
		}})}, nil
	case "sessions list":
		return cliCommand{run: listSessions(rest[0])}, nil
	case "sessions revoke-all":
		return cliCommand{run: revokeAll(rest[0])}, nil
	case "sessions revoke":
		return cliCommand{run: revokeOne(rest[0], rest[1])}, nil
	case "sessions revoke-everyone":
		return cliCommand{run: revokeEveryone(rest[0])}, nil
	case "grants revoke-smartcar":
		return cliCommand{run: revokeSmartcar(rest[0])}, nil
	case "grants revoke-apple":
		return cliCommand{run: revokeApple(rest[0])}, nil
	case "keys report":
		return cliCommand{run: keyReport}, nil
	case "keys rotate":
		return cliCommand{run: rotateKey}, nil
	case "signing-key list":
		return cliCommand{run: listSigningKeys}, nil
	default:
		return retireCommand(rest[0])
	}
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// newClient builds the admin client: token from the environment, a timeout on the HTTP client,
// and h2c for gRPC over http:// (connect-go speaks gRPC only over HTTP/2).
func newClient(o options) (adminv1connect.AdminServiceClient, error) {
	token := strings.TrimSpace(os.Getenv(o.tokenEnv))
	if token == "" {
		return nil, fmt.Errorf("read admin token: environment variable %s is empty", o.tokenEnv)
	}
	base, err := url.Parse(o.addr)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%w: -addr must be an http(s) URL", errUsage)
	}
	if base.Scheme == "http" && !o.plaintext && !loopback(base.Hostname()) {
		return nil, fmt.Errorf("%w: refusing to send the admin token over plain http to %s; use https or -allow-plaintext", errUsage, base.Host)
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}
	var opts []connect.ClientOption
	switch o.protocol {
	case "connect":
	case "grpc":
		opts = append(opts, connect.WithGRPC())
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetHTTP2(true)
		transport.Protocols.SetUnencryptedHTTP2(true)
	case "grpcweb":
		opts = append(opts, connect.WithGRPCWeb())
	default:
		return nil, fmt.Errorf("%w: -protocol must be connect, grpc or grpcweb", errUsage)
	}
	opts = append(opts, connect.WithInterceptors(bearer(token)))
	httpClient := &http.Client{Transport: transport, Timeout: o.timeout}
	return adminv1connect.NewAdminServiceClient(httpClient, strings.TrimRight(o.addr, "/"), opts...), nil
}

// bearer attaches the admin token to every call, unary or streaming.
type bearer string

// WrapUnary implements connect.Interceptor.
func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

// WrapStreamingHandler implements connect.Interceptor; the CLI serves nothing.
func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// loopback reports whether host is this machine, where plain HTTP exposes nothing.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// describe turns an RPC failure into one line an operator can act on: what failed, the server's
// message, its stable code and the request id to find the server's log line.
func describe(what string, err error) error {
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := fmt.Sprintf("%s: %s: %s", what, ce.Code(), ce.Message())
	if code := connectapi.ErrorCode(err); code != "" {
		msg += " (code " + code
		if id := ce.Meta().Get("X-Request-Id"); id != "" {
			msg += ", request id " + id
		}
		msg += ")"
	}
	return errors.New(msg)
}
