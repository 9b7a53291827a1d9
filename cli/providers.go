package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/market"
	"github.com/zennet/zennet/provider"
	"github.com/zennet/zennet/renter"
)

type providersOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	Seeds    []string
	JSON     bool
	PowBits  uint
	Identity string
}

func newCmdProviders(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &providersOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "List the providers of the market this machine knows",
		Long: `providers lists the providers whose signed announcements this machine knows
(CONFIG_DIR/providers.json), after asking the --seed providers for theirs: address,
key, free capacity, price per second of reference work, benchmark score relative
to the reference machine, payment methods, and until when the announcement holds.
Announcements that are forged, expired or carry too little proof of work are
refused.`,
		Example: "  zennet providers --seed 192.0.2.7:2222\n  zennet providers --json",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			return runProviders(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Seeds, "seed", splitList(os.Getenv("ZENNET_SEEDS")), "where to learn the market's providers: a provider's SSH gateway, HOST:PORT (asked where its market node is), or a market node's multiaddr /ip4/…/tcp/…/p2p/ID, through which the providers are looked up (repeatable; env ZENNET_SEEDS)")
	f.BoolVar(&o.JSON, "json", false, "print the announcements as JSON")
	f.UintVar(&o.PowBits, "pow-bits", provider.DefaultPowBits, "proof of work to ask of announcements, in bits")
	f.StringVarP(&o.Identity, "identity", "i", "", "SSH private key to reach seeds with (default as for renting)")
	return cmd
}

func runProviders(ctx context.Context, o *providersOptions) (err error) {
	m, err := loadMarket(ctx, o.IO, o.G, o.Seeds, o.Identity, o.PowBits)
	if err != nil {
		return err
	}
	defer m.seedFailure(&err)
	rows := []cmdutil.ProviderRow{}
	for _, a := range m.dir.List(time.Now()) {
		rec, _, _ := m.book.Get(a.Fingerprint())
		rows = append(rows, cmdutil.ProviderRow{Address: a.Address, Provider: a.Provider, Fingerprint: a.Fingerprint(), Capacity: a.Capacity,
			PricePerWorkMsat: a.PricePerWorkMsat, Score: a.Score, Methods: a.Methods, Expires: a.Expires,
			Reputation: rec.Score(), SpotCheckFailed: m.marks[a.Fingerprint()]})
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindProviders, rows)
	}
	var t [][]string
	for _, p := range rows {
		price := "flat"
		if p.PricePerWorkMsat > 0 {
			price = strconv.FormatFloat(p.PricePerWorkMsat, 'g', 4, 64)
		}
		note := ""
		if p.SpotCheckFailed {
			note = "spot check failed"
		}
		t = append(t, []string{p.Address, p.Fingerprint, strconv.Itoa(p.Capacity.Leases), cmdutil.FormatSize(p.Capacity.MemoryBytes),
			strconv.FormatFloat(p.Capacity.CPUs, 'g', 4, 64), price, strconv.FormatFloat(p.Score, 'f', 2, 64),
			fmt.Sprint(p.Methods), strconv.FormatFloat(p.Reputation, 'f', 2, 64), p.Expires.Local().Format(time.TimeOnly), note})
	}
	cmdutil.Table(o.IO.Out, []string{"ADDRESS", "KEY", "HOSTS", "MEMORY", "CPUS", "PRICE msat/work-s", "SCORE", "PAY", "REPUTATION", "UNTIL", ""}, t)
	if len(rows) == 0 && cmdutil.IsTerminal(o.IO.ErrOut) {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no providers known: pass --seed HOST:PORT")
	}
	return nil
}

type reputationOptions struct {
	IO      cmdutil.IOStreams
	G       *cmdutil.GlobalOptions
	JSON    bool
	DataDir string
	Forgive []string
}

func newCmdReputation(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &reputationOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "reputation",
		Short: "Show this machine's record of its counterparts",
		Long: `reputation shows, per counterpart key, what this machine saw of it: leases,
completed, dropped, failed calibration spot checks, late payments, and the
score (0 to 1; someone never met is 0.5) that renting uses to choose. As a
renter it is your record of providers; with --provider-data-dir, a provider's
record of its renters. A provider refuses a renter key whose leases it
records as ended unpaid (UNPAID); --forgive KEY lets that key rent again.`,
		Example: "  zennet reputation --json\n  zennet reputation --provider-data-dir ~/.local/share/zennet/provider --forgive SHA256:AbC...",
		Args:    cmdutil.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return runReputation(o) },
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print as JSON")
	cmd.Flags().StringVar(&o.DataDir, "provider-data-dir", "", "show a provider's record of its renters (its data dir)")
	cmd.Flags().StringArrayVar(&o.Forgive, "forgive", nil, "with --provider-data-dir: clear a renter key's unpaid leases (SHA256:... fingerprint), so that the provider takes it again (repeatable)")
	return cmd
}

func runReputation(o *reputationOptions) error {
	path := market.BookPath(o.G.ConfigDir)
	if o.DataDir != "" {
		path = market.BookPath(o.DataDir)
	}
	if o.DataDir == "" {
		for _, n := range renter.CheckStateFiles(o.G.ConfigDir) {
			fmt.Fprintf(o.IO.ErrOut, "zennet: %s\n", cmdutil.Printable(n, false))
		}
	}
	book := market.OpenBook(path)
	if len(o.Forgive) > 0 && o.DataDir == "" {
		return cmdutil.Usagef("--forgive is a provider's: name its data dir with --provider-data-dir")
	}
	for _, k := range o.Forgive {
		if !strings.HasPrefix(k, "SHA256:") {
			return cmdutil.Usagef("--forgive %q: name the key by its SHA256:... fingerprint, as 'zennet reputation' shows it", k)
		}
		r, ok, err := book.Get(k)
		if err != nil {
			return err
		}
		if !ok {
			return cmdutil.Usagef("--forgive %s: the provider's book has no record of this key", k)
		}
		if r.Unpaid == 0 {
			continue
		}
		if _, err := book.Update(k, func(r *market.Record) { r.Unpaid = 0 }); err != nil {
			return err
		}
		fmt.Fprintf(o.IO.ErrOut, "forgiven: %s (%d leases ended unpaid); the provider takes it again\n", k, r.Unpaid)
	}
	recs, err := book.All()
	if err != nil {
		return err
	}
	rows := []cmdutil.ReputationRow{}
	for _, r := range recs {
		rows = append(rows, cmdutil.ReputationRow{Record: r, Score: r.Score()})
	}
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindReputation, rows)
	}
	var t [][]string
	for _, r := range rows {
		t = append(t, []string{r.Key, strconv.FormatUint(r.Leases, 10), strconv.FormatUint(r.Completed, 10), strconv.FormatUint(r.Dropped, 10),
			strconv.FormatUint(r.FailedChecks, 10), strconv.FormatUint(r.LatePayments, 10), strconv.FormatUint(r.Unpaid, 10), strconv.FormatFloat(r.Score, 'f', 2, 64),
			r.Last.Local().Format(time.DateTime)})
	}
	cmdutil.Table(o.IO.Out, []string{"KEY", "LEASES", "COMPLETED", "DROPPED", "FAILED CHECKS", "LATE PAYMENTS", "UNPAID", "SCORE", "LAST"}, t)
	return nil
}

// marketView is what this machine knows of the market, for 'zennet
// providers' and 'zennet offers': the providers (the file and --seed's),
// the reputation book and the spot-check marks.
type marketView struct {
	dir     *market.Directory
	book    *market.Book
	marks   map[string]bool
	seedErr error // every seed failed
}

// loadMarket checks the state files and learns the market from seeds,
// saying on io what it noticed.
func loadMarket(ctx context.Context, io cmdutil.IOStreams, g *cmdutil.GlobalOptions, seeds []string, identity string, powBits uint) (marketView, error) {
	if err := checkSeeds(seeds); err != nil {
		return marketView{}, err
	}
	ro := &rentOptions{G: g, Identity: identity}
	signer, _, err := ro.identity()
	if err != nil {
		return marketView{}, err
	}
	notes := renter.CheckStateFiles(g.ConfigDir)
	dir, more, serr := renter.KnownProviders(ctx, g.ConfigDir, seeds, signer, powBits)
	for _, n := range append(notes, more...) {
		fmt.Fprintf(io.ErrOut, "zennet: %s\n", cmdutil.Printable(n, true))
	}
	return marketView{dir: dir, book: market.OpenBook(market.BookPath(g.ConfigDir)), marks: renter.MarkedProviders(g.ConfigDir), seedErr: serr}, nil
}

// seedFailure makes *err exit 3 when every seed failed and nothing else
// went wrong: after what this machine knew already (the table or the
// document, which a script may still use).
func (m marketView) seedFailure(err *error) {
	if m.seedErr != nil && *err == nil {
		*err = cmdutil.CauseError{Msg: fmt.Sprintf("%v: check the addresses, or that those providers run", m.seedErr), Cause: m.seedErr}
	}
}
