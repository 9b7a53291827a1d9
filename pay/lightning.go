package pay

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/invoicesrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// DefaultLightningMinMsat is the least a Lightning payment can be by
// default: lnd sends no HTLC below its channel policy's minimum, 1000 msat
// unless the node runs with --bitcoin.minhtlcout lower.
const DefaultLightningMinMsat = 1000

// LNDConfig says where an lnd node's gRPC interface is and how to
// authenticate, with lncli's flags and defaults: --lnddir, --rpcserver,
// --tlscertpath, --macaroonpath, --network.
type LNDConfig struct {
	// LndDir is lnd's base directory; default ~/.lnd (lncli's default).
	LndDir string
	// RPCServer is host:port of the gRPC interface; default
	// localhost:10009.
	RPCServer string
	// TLSCertPath is lnd's TLS certificate; default LndDir/tls.cert.
	TLSCertPath string
	// MacaroonPath is the macaroon to present; default
	// LndDir/data/chain/bitcoin/NETWORK/admin.macaroon.
	MacaroonPath string
	// Network is mainnet, testnet, testnet4, regtest, simnet or signet;
	// default mainnet.
	Network string
}

// DefaultLndDir is lnd's default base directory on this system, as lncli
// computes it.
func DefaultLndDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "Lnd")
	case "windows":
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "Lnd")
		}
		return filepath.Join(home, "AppData", "Local", "Lnd")
	}
	return filepath.Join(home, ".lnd")
}

// WithDefaults fills the empty fields as lncli does and checks the
// network.
func (c LNDConfig) WithDefaults() (LNDConfig, error) {
	if c.Network == "" {
		c.Network = "mainnet"
	}
	switch c.Network {
	case "mainnet", "testnet", "testnet4", "regtest", "simnet", "signet":
	default:
		return c, fmt.Errorf("lnd config: unknown network %q", c.Network)
	}
	if c.LndDir == "" {
		c.LndDir = DefaultLndDir()
	}
	c.LndDir = expandHome(c.LndDir)
	if c.RPCServer == "" {
		c.RPCServer = "localhost:10009"
	}
	if c.TLSCertPath == "" {
		c.TLSCertPath = filepath.Join(c.LndDir, "tls.cert")
	}
	if c.MacaroonPath == "" {
		c.MacaroonPath = filepath.Join(c.LndDir, "data", "chain", "bitcoin", c.Network, "admin.macaroon")
	}
	c.TLSCertPath, c.MacaroonPath = expandHome(c.TLSCertPath), expandHome(c.MacaroonPath)
	return c, nil
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// macaroonCredential presents a macaroon with every call, as lnd expects.
type macaroonCredential string

func (m macaroonCredential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"macaroon": string(m)}, nil
}

func (macaroonCredential) RequireTransportSecurity() bool { return true }

// LND is a connection to one lnd node: the renter's, to pay, or the
// provider's, to issue invoices. It is safe for concurrent use.
type LND struct {
	conn    *grpc.ClientConn
	ln      lnrpc.LightningClient
	router  routerrpc.RouterClient
	invoice invoicesrpc.InvoicesClient
	pubkey  string
}

// DialLND connects to the node cfg describes (after WithDefaults) and
// asks who it is.
func DialLND(ctx context.Context, cfg LNDConfig) (*LND, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(cfg.TLSCertPath)
	if err != nil {
		return nil, fmt.Errorf("dial lnd: read tls cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("dial lnd: %s holds no PEM certificate", cfg.TLSCertPath)
	}
	mac, err := os.ReadFile(cfg.MacaroonPath)
	if err != nil {
		return nil, fmt.Errorf("dial lnd: read macaroon: %w", err)
	}
	conn, err := grpc.NewClient(cfg.RPCServer,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})),
		grpc.WithPerRPCCredentials(macaroonCredential(hex.EncodeToString(mac))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(50<<20)))
	if err != nil {
		return nil, fmt.Errorf("dial lnd %s: %w", cfg.RPCServer, err)
	}
	n := &LND{conn: conn, ln: lnrpc.NewLightningClient(conn), router: routerrpc.NewRouterClient(conn),
		invoice: invoicesrpc.NewInvoicesClient(conn)}
	info, err := n.ln.GetInfo(ctx, &lnrpc.GetInfoRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial lnd %s: get info: %w", cfg.RPCServer, err)
	}
	n.pubkey = info.IdentityPubkey
	return n, nil
}

// Close closes the connection.
func (n *LND) Close() error { return n.conn.Close() }

// Pubkey is the node's identity public key, hex: what a provider announces
// so that renters can check whom its invoices pay.
func (n *LND) Pubkey() string { return n.pubkey }

// Lightning is the node's main gRPC service, for what this package does not
// wrap (balances, channels).
func (n *LND) Lightning() lnrpc.LightningClient { return n.ln }

// Router is the node's router service.
func (n *LND) Router() routerrpc.RouterClient { return n.router }

// LightningPayerTerms are the renter's terms for paying one lease over
// Lightning.
type LightningPayerTerms struct {
	Lease string
	// PayeeNode is the provider's node public key (hex), agreed in
	// negotiation: invoices must pay it.
	PayeeNode string
	// MinPayable is the least amount to pay at once; 0 means
	// DefaultLightningMinMsat.
	MinPayable uint64
	// MaxFeeMsat bounds the routing fee of one payment; 0 means 1% of
	// the amount plus 1000 msat.
	MaxFeeMsat uint64
	// Timeout bounds one payment attempt; 0 means 60 s.
	Timeout time.Duration
}

// LightningPayer pays one lease's invoices from the renter's node with the
// router's SendPaymentV2.
type LightningPayer struct {
	n *LND
	t LightningPayerTerms
}

// Payer returns the renter's Payer for a lease.
func (n *LND) Payer(t LightningPayerTerms) *LightningPayer {
	if t.MinPayable == 0 {
		t.MinPayable = DefaultLightningMinMsat
	}
	if t.Timeout == 0 {
		t.Timeout = 60 * time.Second
	}
	return &LightningPayer{n: n, t: t}
}

// Method returns MethodLightning.
func (p *LightningPayer) Method() string { return MethodLightning }

// MinPayable is the terms' minimum.
func (p *LightningPayer) MinPayable() uint64 { return p.t.MinPayable }

// invoiceMemo is the description of a lease's invoices: the renter checks
// that an invoice names the lease it pays for.
func invoiceMemo(lease string, reportSeq uint64) string {
	return fmt.Sprintf("zennet lease %s report %d", lease, reportSeq)
}

// Prepare decodes the request's invoice with the renter's node and checks
// it: the amount is the request's, and no more than due (ErrAmount); it
// pays the agreed node, names the lease and report, and has not expired
// (ErrBadRequest).
func (p *LightningPayer) Prepare(ctx context.Context, args PayArgs, req Request) (Intent, error) {
	if req.Method != MethodLightning || req.Lease != p.t.Lease || args.Lease != p.t.Lease {
		return Intent{}, fmt.Errorf("%w: %s request for lease %q, paying lightning for %q", ErrBadRequest, req.Method, req.Lease, p.t.Lease)
	}
	if req.Msat > args.Due {
		return Intent{}, fmt.Errorf("%w: provider asks %d msat, the renter's bill says %d msat are due", ErrAmount, req.Msat, args.Due)
	}
	pr, err := p.n.ln.DecodePayReq(ctx, &lnrpc.PayReqString{PayReq: req.Invoice})
	if err != nil {
		return Intent{}, fmt.Errorf("%w: decode invoice: %v", ErrBadRequest, err)
	}
	switch {
	case pr.NumMsat <= 0 || uint64(pr.NumMsat) != req.Msat:
		return Intent{}, fmt.Errorf("%w: invoice is for %d msat, the request says %d msat", ErrAmount, pr.NumMsat, req.Msat)
	case pr.Destination != p.t.PayeeNode:
		return Intent{}, fmt.Errorf("%w: invoice pays node %s, not the provider's %s", ErrBadRequest, pr.Destination, p.t.PayeeNode)
	case pr.Description != invoiceMemo(req.Lease, req.Seq):
		return Intent{}, fmt.Errorf("%w: invoice says %q, not %q", ErrBadRequest, pr.Description, invoiceMemo(req.Lease, req.Seq))
	case time.Unix(pr.Timestamp+pr.Expiry, 0).Before(time.Now().Add(p.t.Timeout)):
		return Intent{}, fmt.Errorf("%w: invoice expires at %s", ErrBadRequest, time.Unix(pr.Timestamp+pr.Expiry, 0).UTC().Format(time.RFC3339))
	}
	if err := validHash("payment hash", pr.PaymentHash); err != nil {
		return Intent{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return Intent{ID: pr.PaymentHash, Lease: p.t.Lease, Method: MethodLightning, Seq: args.Seq, Msat: req.Msat,
		Request: req, PaymentHash: pr.PaymentHash, State: StatePending}, nil
}

func (p *LightningPayer) maxFee(msat uint64) int64 {
	if p.t.MaxFeeMsat > 0 {
		return int64(p.t.MaxFeeMsat)
	}
	return int64(msat/100 + 1000)
}

// Send pays the invoice and waits for the outcome. lnd refuses to pay a
// payment hash twice: if the payment exists already, Send tracks it.
func (p *LightningPayer) Send(ctx context.Context, in Intent) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, p.t.Timeout+30*time.Second)
	defer cancel()
	stream, err := p.n.router.SendPaymentV2(ctx, &routerrpc.SendPaymentRequest{
		PaymentRequest:    in.Request.Invoice,
		TimeoutSeconds:    int32(p.t.Timeout / time.Second),
		FeeLimitMsat:      p.maxFee(in.Msat),
		NoInflightUpdates: true,
	})
	if err == nil {
		var out Outcome
		out, err = waitPayment(stream)
		if err == nil {
			return out, nil
		}
	}
	if status.Code(err) == codes.AlreadyExists {
		return p.Lookup(ctx, in)
	}
	return Outcome{}, fmt.Errorf("send payment %s: %w", in.PaymentHash, err)
}

// Lookup asks the renter's node what became of a payment. A payment the
// node never heard of failed: it was never sent. One still in flight
// when ctx ends is pending.
func (p *LightningPayer) Lookup(ctx context.Context, in Intent) (Outcome, error) {
	hash, err := hex.DecodeString(in.PaymentHash)
	if err != nil {
		return Outcome{}, fmt.Errorf("look up payment: %w", err)
	}
	stream, err := p.n.router.TrackPaymentV2(ctx, &routerrpc.TrackPaymentRequest{PaymentHash: hash, NoInflightUpdates: true})
	if err == nil {
		var out Outcome
		out, err = waitPayment(stream)
		if err == nil {
			return out, nil
		}
	}
	switch {
	case status.Code(err) == codes.NotFound:
		return Outcome{State: StateFailed, Reason: "the node never sent the payment"}, nil
	case ctx.Err() != nil:
		return Outcome{State: StatePending, Reason: "still in flight"}, nil
	}
	return Outcome{}, fmt.Errorf("look up payment %s: %w", in.PaymentHash, err)
}

// waitPayment reads payment updates until the payment succeeds or fails.
func waitPayment(stream grpc.ServerStreamingClient[lnrpc.Payment]) (Outcome, error) {
	for {
		pm, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Outcome{}, err
		}
		switch pm.Status {
		case lnrpc.Payment_SUCCEEDED:
			return Outcome{State: StateDone, Msat: uint64(pm.ValueMsat), FeeMsat: uint64(pm.FeeMsat), Preimage: pm.PaymentPreimage}, nil
		case lnrpc.Payment_FAILED:
			return Outcome{State: StateFailed, Reason: "lightning payment failed: " + strings.ToLower(pm.FailureReason.String())}, nil
		}
	}
}

// Proof carries the payment hash and preimage.
func (p *LightningPayer) Proof(in Intent) Proof {
	return Proof{Method: MethodLightning, Lease: in.Lease, Msat: in.Msat, PaymentHash: in.PaymentHash, Preimage: in.Preimage}
}

// LightningPayeeTerms are the provider's terms for one lease's invoices.
type LightningPayeeTerms struct {
	Lease string
	// MinPayable is the least amount to ask at once; 0 means
	// DefaultLightningMinMsat.
	MinPayable uint64
	// Expiry is the invoices' lifetime; 0 means one hour.
	Expiry time.Duration
}

// LightningPayee issues one lease's invoices on the provider's node and
// counts them when the node reports them settled.
type LightningPayee struct {
	n *LND
	t LightningPayeeTerms
}

// Payee returns the provider's Payee for a lease.
func (n *LND) Payee(t LightningPayeeTerms) *LightningPayee {
	if t.MinPayable == 0 {
		t.MinPayable = DefaultLightningMinMsat
	}
	if t.Expiry == 0 {
		t.Expiry = time.Hour
	}
	return &LightningPayee{n: n, t: t}
}

// Method returns MethodLightning.
func (p *LightningPayee) Method() string { return MethodLightning }

// MinPayable is the terms' minimum.
func (p *LightningPayee) MinPayable() uint64 { return p.t.MinPayable }

// Request adds an invoice for msat, described as the lease's bill up to
// report reportSeq.
func (p *LightningPayee) Request(ctx context.Context, lease string, reqSeq, reportSeq, msat uint64) (Intent, error) {
	if lease != p.t.Lease {
		return Intent{}, fmt.Errorf("%w: request for lease %q from the payee of %q", ErrBadRequest, lease, p.t.Lease)
	}
	inv, err := p.n.ln.AddInvoice(ctx, &lnrpc.Invoice{ValueMsat: int64(msat), Memo: invoiceMemo(lease, reportSeq),
		Expiry: int64(p.t.Expiry / time.Second)})
	if err != nil {
		return Intent{}, fmt.Errorf("add invoice: %w", err)
	}
	hash := hex.EncodeToString(inv.RHash)
	req := Request{Method: MethodLightning, Lease: lease, Seq: reportSeq, Msat: msat, Invoice: inv.PaymentRequest}
	return Intent{ID: hash, Lease: lease, Method: MethodLightning, Seq: reqSeq, Msat: msat, Request: req,
		PaymentHash: hash, State: StatePending}, nil
}

// Confirm checks that the proof's payment hash is one of the lease's
// pending invoices and waits, within ctx, until the node reports it
// settled; it counts the amount the node received.
func (p *LightningPayee) Confirm(ctx context.Context, st PayeeState, proof Proof) (Confirmation, error) {
	if proof.Method != MethodLightning {
		return Confirmation{}, fmt.Errorf("%w: %s proof", ErrBadRequest, proof.Method)
	}
	var in *Intent
	for i := range st.Pending {
		if st.Pending[i].PaymentHash == proof.PaymentHash {
			in = &st.Pending[i]
		}
	}
	if in == nil {
		return Confirmation{}, fmt.Errorf("%w: payment hash %.64s", ErrUnknownPayment, proof.PaymentHash)
	}
	if proof.Preimage != "" {
		pre, err := hex.DecodeString(proof.Preimage)
		if h := sha256.Sum256(pre); err != nil || hex.EncodeToString(h[:]) != proof.PaymentHash {
			return Confirmation{}, fmt.Errorf("%w: preimage does not hash to the payment hash", ErrBadRequest)
		}
	}
	hash, err := hex.DecodeString(in.PaymentHash)
	if err != nil {
		return Confirmation{}, fmt.Errorf("confirm payment: %w", err)
	}
	stream, err := p.n.invoice.SubscribeSingleInvoice(ctx, &invoicesrpc.SubscribeSingleInvoiceRequest{RHash: hash})
	if err != nil {
		return Confirmation{}, fmt.Errorf("%w: subscribe to invoice: %v", ErrNotSettled, err)
	}
	for {
		inv, err := stream.Recv()
		if err != nil {
			return Confirmation{}, fmt.Errorf("%w: invoice %s: %v", ErrNotSettled, in.PaymentHash, err)
		}
		switch inv.State {
		case lnrpc.Invoice_SETTLED:
			return Confirmation{Msat: uint64(inv.AmtPaidMsat), Settled: []string{in.ID}, Preimage: hex.EncodeToString(inv.RPreimage)}, nil
		case lnrpc.Invoice_CANCELED:
			return Confirmation{}, fmt.Errorf("%w: invoice %s was canceled", ErrNotSettled, in.PaymentHash)
		}
	}
}

// Lookup asks the provider's node whether the invoice was paid.
func (p *LightningPayee) Lookup(ctx context.Context, in Intent) (Outcome, error) {
	hash, err := hex.DecodeString(in.PaymentHash)
	if err != nil {
		return Outcome{}, fmt.Errorf("look up invoice: %w", err)
	}
	inv, err := p.n.invoice.LookupInvoiceV2(ctx, &invoicesrpc.LookupInvoiceMsg{
		InvoiceRef: &invoicesrpc.LookupInvoiceMsg_PaymentHash{PaymentHash: hash}})
	if status.Code(err) == codes.NotFound {
		return Outcome{State: StateFailed, Reason: "the node has no such invoice"}, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("look up invoice %s: %w", in.PaymentHash, err)
	}
	switch inv.State {
	case lnrpc.Invoice_SETTLED:
		return Outcome{State: StateDone, Msat: uint64(inv.AmtPaidMsat), Preimage: hex.EncodeToString(inv.RPreimage)}, nil
	case lnrpc.Invoice_CANCELED:
		return Outcome{State: StateFailed, Reason: "invoice canceled"}, nil
	}
	return Outcome{State: StatePending}, nil
}

// Cancel cancels the invoice; if it was settled first, the outcome says
// so.
func (p *LightningPayee) Cancel(ctx context.Context, in Intent) (Outcome, error) {
	hash, err := hex.DecodeString(in.PaymentHash)
	if err != nil {
		return Outcome{}, fmt.Errorf("cancel invoice: %w", err)
	}
	if _, cerr := p.n.invoice.CancelInvoice(ctx, &invoicesrpc.CancelInvoiceMsg{PaymentHash: hash}); cerr == nil {
		return Outcome{State: StateFailed, Reason: "withdrawn unpaid"}, nil
	}
	out, err := p.Lookup(ctx, in)
	if err != nil {
		return Outcome{}, err
	}
	if out.State == StatePending {
		return Outcome{}, fmt.Errorf("cancel invoice %s: it stays open", in.PaymentHash)
	}
	return out, nil
}
