package cli

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/zennet/zennet/cli/cmdutil"
	"github.com/zennet/zennet/provider"
)

type offersOptions struct {
	IO       cmdutil.IOStreams
	G        *cmdutil.GlobalOptions
	Seeds    []string
	JSON     bool
	PowBits  uint
	Identity string
	Sort     string
	MinCPUs  float64
	MinMem   string
}

func newCmdOffers(io cmdutil.IOStreams, g *cmdutil.GlobalOptions) *cobra.Command {
	o := &offersOptions{IO: io, G: g}
	cmd := &cobra.Command{
		Use:   "offers",
		Short: "Search the market's offers: price, speed, free capacity",
		Long: `offers lists what the market's providers offer, as 'vastai search offers' does:
each provider's price per unit of work (msat for what the reference machine does
in a CPU-second), its benchmark score (its speed relative to the reference
machine), what one of its CPUs costs an hour busy (price × score × 3600), its
free capacity, its calibration set's digest, the payment methods it takes and
your reputation record of it. It reads the signed announcements this machine
knows (CONFIG_DIR/providers.json) after asking the --seed providers for theirs;
nothing is rented. --sort price puts the cheapest per unit of work first,
--sort score the fastest; --min-cpus and --min-memory keep the providers with
that much free. 'zennet -n N ... --dry-run' asks them for an actual offer.`,
		Example: `  zennet offers --seed 192.0.2.7:2222
  zennet offers --sort score --min-cpus 8
  zennet offers --json --jq '.data[0].address'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			return runOffers(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Seeds, "seed", splitList(os.Getenv("ZENNET_SEEDS")), "where to learn the market's providers: HOST:PORT of a provider's SSH gateway, or a market node's multiaddr (repeatable; env ZENNET_SEEDS)")
	f.BoolVar(&o.JSON, "json", false, "print the offers as JSON")
	f.UintVar(&o.PowBits, "pow-bits", provider.DefaultPowBits, "proof of work to ask of announcements, in bits")
	f.StringVarP(&o.Identity, "identity", "i", "", "SSH private key to reach seeds with (default as for renting)")
	f.StringVar(&o.Sort, "sort", "price", "order: price (cheapest per unit of work first) or score (fastest first)")
	f.Float64Var(&o.MinCPUs, "min-cpus", 0, "only providers with at least this many CPUs free")
	f.StringVar(&o.MinMem, "min-memory", "", "only providers with at least this much memory free (e.g. 4G)")
	return cmd
}

func runOffers(ctx context.Context, o *offersOptions) (err error) {
	if o.Sort != "price" && o.Sort != "score" {
		return cmdutil.Usagef("--sort %q: sort by price or score", o.Sort)
	}
	if !(o.MinCPUs >= 0) {
		return cmdutil.Usagef("--min-cpus %v: must not be negative", o.MinCPUs)
	}
	var minMem int64
	if o.MinMem != "" {
		var err error
		if minMem, err = cmdutil.ParseSize(o.MinMem); err != nil {
			return cmdutil.Usagef("--min-memory: %v", err)
		}
	}
	m, err := loadMarket(ctx, o.IO, o.G, o.Seeds, o.Identity, o.PowBits)
	if err != nil {
		return err
	}
	defer m.seedFailure(&err)
	rows := []cmdutil.OfferRow{}
	for _, a := range m.dir.List(time.Now()) {
		if a.Capacity.Leases == 0 || a.Capacity.CPUs < o.MinCPUs || a.Capacity.MemoryBytes < minMem {
			continue
		}
		rec, _, _ := m.book.Get(a.Fingerprint())
		rows = append(rows, cmdutil.OfferRow{Address: a.Address, Fingerprint: a.Fingerprint(), PricePerWorkMsat: a.PricePerWorkMsat, Score: a.Score,
			CPUHourMsat: a.PricePerWorkMsat * a.Score * 3600,
			FreeHosts:   a.Capacity.Leases, FreeCPUs: a.Capacity.CPUs, FreeMemoryBytes: a.Capacity.MemoryBytes, FreeDiskBytes: a.Capacity.DiskBytes, Calibration: a.Calibration, Methods: a.Methods,
			Reputation: rec.Score(), SpotCheckFailed: m.marks[a.Fingerprint()], Expires: a.Expires})
	}
	sortOffers(rows, o.Sort)
	if o.JSON {
		return cmdutil.WriteJSON(o.IO.Out, cmdutil.KindOffers, rows)
	}
	var t [][]string
	for _, r := range rows {
		price, hour := "flat", "-"
		if r.PricePerWorkMsat > 0 {
			price = strconv.FormatFloat(r.PricePerWorkMsat, 'g', 4, 64)
			if r.Score > 0 {
				hour = strconv.FormatFloat(r.CPUHourMsat, 'f', 0, 64)
			}
		}
		calib := r.Calibration
		if len(calib) > 16 {
			calib = calib[:16]
		}
		note := ""
		if r.SpotCheckFailed {
			note = "spot check failed"
		}
		t = append(t, []string{r.Address, price, strconv.FormatFloat(r.Score, 'f', 2, 64), hour, strconv.Itoa(r.FreeHosts),
			strconv.FormatFloat(r.FreeCPUs, 'g', 4, 64), cmdutil.FormatSize(r.FreeMemoryBytes), cmdutil.FormatSize(r.FreeDiskBytes),
			calib, fmt.Sprint(r.Methods), strconv.FormatFloat(r.Reputation, 'f', 2, 64), note})
	}
	cmdutil.Table(o.IO.Out, []string{"PROVIDER", "PRICE msat/work-s", "SCORE", "msat/CPU-h", "HOSTS", "CPUS", "MEMORY", "DISK", "CALIBRATION", "PAY", "REPUTATION", ""}, t)
	if len(rows) == 0 && cmdutil.IsTerminal(o.IO.ErrOut) {
		fmt.Fprintln(o.IO.ErrOut, "zennet: no offers: pass --seed HOST:PORT, or ask for less")
	}
	return nil
}

// sortOffers orders rows by price per unit of work, cheapest first (flat
// rates, which have none, last), or by score, fastest first; ties by
// address.
func sortOffers(rows []cmdutil.OfferRow, by string) {
	slices.SortStableFunc(rows, func(a, b cmdutil.OfferRow) int {
		var c int
		switch by {
		case "score":
			c = -cmp.Compare(a.Score, b.Score)
		default:
			pa, pb := a.PricePerWorkMsat, b.PricePerWorkMsat
			if (pa == 0) != (pb == 0) {
				if pa == 0 {
					return 1
				}
				return -1
			}
			c = cmp.Compare(pa, pb)
		}
		if c != 0 {
			return c
		}
		if a.Address < b.Address {
			return -1
		}
		if a.Address > b.Address {
			return 1
		}
		return 0
	})
}
