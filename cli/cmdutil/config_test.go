package cmdutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// flags > env > file > defaults, a command's table over the top level,
// lists replacing defaults, and mistakes named.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type opts struct {
		memory, listen, sell string
		seeds                []string
		count                int
	}
	run := func(args ...string) (opts, error) {
		var o opts
		root := &cobra.Command{Use: "zennet", SilenceErrors: true, SilenceUsage: true, RunE: func(*cobra.Command, []string) error { return nil }}
		root.Flags().StringVarP(&o.memory, "memory", "m", "512M", "memory")
		root.Flags().IntVarP(&o.count, "count", "n", 1, "hosts")
		root.Flags().StringSliceVar(&o.seeds, "seed", []string{"d:1"}, "seeds (env ZENNET_TEST_SEEDS)")
		if v := os.Getenv("ZENNET_TEST_SEEDS"); v != "" {
			o.seeds = []string{v}
		}
		provide := &cobra.Command{Use: "provide", RunE: func(*cobra.Command, []string) error { return nil }}
		provide.Flags().StringVar(&o.listen, "listen", ":2222", "address")
		provide.Flags().StringVarP(&o.sell, "memory", "m", "", "memory to sell")
		root.AddCommand(provide)
		AddConfigFile(root, func() string { return dir })
		root.SetArgs(args)
		return o, root.Execute()
	}

	write("memory = \"1G\"\ncount = 3\nseed = [\"a:1\", \"b:2\"]\n\n[provide]\nlisten = \":9999\"\nmemory = \"8G\"\n")
	o, err := run()
	if err != nil || o.memory != "1G" || o.count != 3 || strings.Join(o.seeds, ",") != "a:1,b:2" {
		t.Fatalf("from the file: %+v, %v", o, err)
	}
	if o, _ := run("-m", "2G"); o.memory != "2G" || o.count != 3 {
		t.Errorf("the command line wins: %+v", o)
	}
	t.Setenv("ZENNET_TEST_SEEDS", "e:5")
	if o, _ := run(); strings.Join(o.seeds, ",") != "e:5" {
		t.Errorf("the environment wins over the file: %+v", o)
	}
	if o, _ := run("provide"); o.listen != ":9999" || o.sell != "8G" {
		t.Errorf("[provide] over the top level: %+v", o)
	}
	os.Remove(filepath.Join(dir, ConfigFileName))
	if o, err := run(); err != nil || o.memory != "512M" || o.count != 1 {
		t.Errorf("no file, the defaults: %+v, %v", o, err)
	}

	var ue UsageError
	for _, tc := range []struct{ file, cmd, want string }{
		{"memroy = \"1G\"\n", "", "memroy is not a flag of zennet"},
		{"[provide]\ncount = 2\n", "provide", "[provide] count is not a flag of zennet provide"},
		{"count = \"many\"\n", "", `count = many: strconv.ParseInt: parsing "many": invalid syntax`},
		{"memory = [\"1G\", \"2G\"]\n", "", "--memory takes one value, not a list"},
		{"memory = \n", "", "config file " + filepath.Join(dir, ConfigFileName)},
	} {
		write(tc.file)
		var args []string
		if tc.cmd != "" {
			args = []string{tc.cmd}
		}
		if _, err := run(args...); !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a usage error with %q", tc.file, err, tc.want)
		}
	}
}
