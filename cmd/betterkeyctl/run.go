package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/alecthomas/kong"

	"github.com/betterkey/backend/adapters/connectapi"
	adminv1 "github.com/betterkey/backend/gen/betterkey/admin/v1"
	"github.com/betterkey/backend/gen/betterkey/admin/v1/adminv1connect"
)

// errUsage marks a malformed command line; main exits 2 for it, as kong and flag do.
var errUsage = errors.New("usage")

// cli is the whole command line: the global flags, then one struct per command. kong parses it,
// checks the arguments' count and types, and prints the help from the tags.
type cli struct {
	Addr           string         `default:"http://127.0.0.1:8081" help:"Admin API base URL (BETTERKEY_ADMIN_ADDR of the server)."`
	TokenEnv       string         `default:"BETTERKEY_ADMIN_TOKEN" help:"Name of the environment variable holding the admin token."`
	Output         string         `short:"o" enum:"text,json" default:"text" help:"Output format: text or json."`
	Protocol       string         `enum:"connect,grpc,grpcweb" default:"connect" help:"Wire protocol: connect, grpc or grpcweb."`
	Timeout        *time.Duration `help:"Deadline for the whole command (default 15s; keys rewrap: none unless given)."`
	AllowPlaintext bool           `help:"Allow http:// to a non-loopback host (sends the token unencrypted)."`

	User struct {
		Get        userGet        `cmd:"" help:"Show an account."`
		GetByApple userGetByApple `cmd:"" help:"Show the account of an Apple identity."`
	} `cmd:"" help:"Accounts."`
	Sessions struct {
		List           sessionsList           `cmd:"" help:"List an account's sessions, newest first."`
		RevokeAll      sessionsRevokeAll      `cmd:"" help:"Revoke every active session of an account."`
		Revoke         sessionsRevoke         `cmd:"" help:"Revoke one session of an account."`
		RevokeEveryone sessionsRevokeEveryone `cmd:"" help:"Emergency: revoke every session of every account."`
	} `cmd:"" help:"App sessions."`
	Grants struct {
		RevokeSmartcar grantsRevokeSmartcar `cmd:"" help:"Disconnect an account's vehicles at Smartcar (needs re-auth)."`
		RevokeApple    grantsRevokeApple    `cmd:"" help:"Revoke an account's Sign in with Apple authorizations."`
	} `cmd:"" help:"Upstream grants."`
	Keys struct {
		Report keysReport `cmd:"" help:"Show the key versions and the secrets each protects."`
		Rotate keysRotate `cmd:"" help:"Add a key version that new seals use."`
		Rewrap keysRewrap `cmd:"" help:"Move every stored secret to the latest key version, printing progress after each batch; runs until done or interrupted unless --timeout is given."`
		Retire keysRetire `cmd:"" help:"Retire key versions below min-version once none is in use."`
	} `cmd:"" help:"Keys sealing the secrets at rest."`
	SigningKey struct {
		List   signingKeyList   `cmd:"" help:"List the session signing keys and their state."`
		Rotate signingKeyRotate `cmd:"" help:"Add a session signing key; the replaced keys verify for --overlap after it signs."`
	} `cmd:"" help:"Session signing keys."`
}

// commandLine is what every command struct is: it turns its parsed arguments into the call to make.
type commandLine interface {
	command() (cliCommand, error)
}

// run is the whole CLI behind main, callable from tests: parse, build a client, run one command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p, err := parse(args, stdout, stderr)
	if err != nil || p.help {
		return err
	}
	c, cmd := p.cli, p.cmd
	timeout := defaultTimeout
	switch {
	case c.Timeout != nil:
		timeout = *c.Timeout
	case cmd.long:
		timeout = 0 // a long job runs until it ends or is interrupted
	}
	client, err := newClient(c, timeout)
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out := printer{w: stdout, json: c.Output == "json"}
	if err := cmd.run(ctx, client, out); err != nil {
		return describe(p.name, err)
	}
	return nil
}

// parsed is a command line kong accepted: the flags, the command to run and its two-word name,
// or only that the help was asked for (and printed).
type parsed struct {
	cli  cli
	cmd  cliCommand
	name string
	help bool
}

func parse(args []string, stdout, stderr io.Writer) (parsed, error) {
	var p parsed
	parser, err := kong.New(&p.cli, kong.Name("betterkeyctl"),
		kong.Description("Support and operations CLI for the BetterKey admin API. The admin token is read from the environment variable named by --token-env."),
		kong.Writers(stdout, stderr), kong.Exit(func(int) { p.help = true }))
	if err != nil {
		return parsed{}, err
	}
	kctx, err := parser.Parse(args)
	if p.help {
		return p, nil // --help printed the usage; what kong says after it does not matter
	}
	if err != nil {
		return parsed{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	line, ok := kctx.Selected().Target.Addr().Interface().(commandLine)
	if !ok {
		return parsed{}, fmt.Errorf("%w: a command is required", errUsage)
	}
	if p.cmd, err = line.command(); err != nil {
		return parsed{}, err
	}
	p.name = strings.Join(strings.Fields(kctx.Command())[:2], " ")
	return p, nil
}

// defaultTimeout is every command's deadline but a long job's, unless --timeout says otherwise.
const defaultTimeout = 15 * time.Second

// commandFunc runs one admin command and prints its result.
type commandFunc func(context.Context, adminv1connect.AdminServiceClient, printer) error

// cliCommand is a parsed command: what to run, and whether it is a long job that should not get
// the default deadline.
type cliCommand struct {
	run  commandFunc
	long bool
}

type userGet struct{ userArg }

func (c userGet) command() (cliCommand, error) {
	return cliCommand{run: getUser(&adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_UserId{UserId: c.UserID}})}, nil
}

type userGetByApple struct {
	Issuer  string `arg:"" help:"Apple's issuer, https://appleid.apple.com."`
	Subject string `arg:"" help:"The Apple subject (sub)."`
}

func (c userGetByApple) command() (cliCommand, error) {
	return cliCommand{run: getUser(&adminv1.GetUserRequest{Lookup: &adminv1.GetUserRequest_Apple{
		Apple: &adminv1.AppleIdentity{Issuer: c.Issuer, Subject: c.Subject},
	}})}, nil
}

// userArg is the one argument of the commands about one account.
type userArg struct {
	UserID string `arg:"" help:"The account's id."`
}

type (
	sessionsList         struct{ userArg }
	sessionsRevokeAll    struct{ userArg }
	grantsRevokeSmartcar struct{ userArg }
	grantsRevokeApple    struct{ userArg }
)

func (c sessionsList) command() (cliCommand, error) {
	return cliCommand{run: listSessions(c.UserID)}, nil
}
func (c sessionsRevokeAll) command() (cliCommand, error) {
	return cliCommand{run: revokeAll(c.UserID)}, nil
}
func (c grantsRevokeSmartcar) command() (cliCommand, error) {
	return cliCommand{run: revokeSmartcar(c.UserID)}, nil
}
func (c grantsRevokeApple) command() (cliCommand, error) {
	return cliCommand{run: revokeApple(c.UserID)}, nil
}

type sessionsRevoke struct {
	UserID    string `arg:"" help:"The account's id."`
	SessionID string `arg:"" help:"The session to revoke."`
}

func (c sessionsRevoke) command() (cliCommand, error) {
	return cliCommand{run: revokeOne(c.UserID, c.SessionID)}, nil
}

type sessionsRevokeEveryone struct {
	Confirm string `arg:"" help:"The phrase \"revoke every session\", to say it is meant."`
}

func (c sessionsRevokeEveryone) command() (cliCommand, error) {
	return cliCommand{run: revokeEveryone(c.Confirm)}, nil
}

type (
	keysReport     struct{}
	keysRotate     struct{}
	signingKeyList struct{}
)

func (keysReport) command() (cliCommand, error)     { return cliCommand{run: keyReport}, nil }
func (keysRotate) command() (cliCommand, error)     { return cliCommand{run: rotateKey}, nil }
func (signingKeyList) command() (cliCommand, error) { return cliCommand{run: listSigningKeys}, nil }

// newClient builds the admin client: token from the environment, a timeout on the HTTP client,
// and h2c for gRPC over http:// (connect-go speaks gRPC only over HTTP/2).
func newClient(c cli, timeout time.Duration) (adminv1connect.AdminServiceClient, error) {
	token := strings.TrimSpace(os.Getenv(c.TokenEnv))
	if token == "" {
		return nil, fmt.Errorf("read admin token: environment variable %s is empty", c.TokenEnv)
	}
	base, err := url.Parse(c.Addr)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%w: -addr must be an http(s) URL", errUsage)
	}
	if base.Scheme == "http" && !c.AllowPlaintext && !loopback(base.Hostname()) {
		return nil, fmt.Errorf("%w: refusing to send the admin token over plain http to %s; use https or -allow-plaintext", errUsage, base.Host)
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}
	var opts []connect.ClientOption
	switch c.Protocol {
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
	httpClient := &http.Client{Transport: transport, Timeout: timeout}
	return adminv1connect.NewAdminServiceClient(httpClient, strings.TrimRight(c.Addr, "/"), opts...), nil
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
