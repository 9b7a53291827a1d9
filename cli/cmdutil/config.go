package cmdutil

// The config file: CONFIG_DIR/config.toml gives flags their values where
// neither the command line nor the environment does (flags > env > file >
// defaults). Its top-level keys are long flag names and apply to every
// command that has the flag; a table named after a command (provide,
// [provider.status]) holds keys for that command alone, which win over
// the top-level ones.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ConfigFileName is the config file's name in the config dir.
const ConfigFileName = "config.toml"

// ConfigFile is a parsed config file.
type ConfigFile struct {
	Path string
	raw  map[string]any
}

// LoadConfigFile reads path; a file that does not exist is an empty config.
func LoadConfigFile(path string) (*ConfigFile, error) {
	cf := &ConfigFile{Path: path, raw: map[string]any{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := toml.Decode(string(b), &cf.raw); err != nil {
		return nil, Usagef("config file %s: %v (fix the file, or move it away)", path, err)
	}
	return cf, nil
}

// values are the keys that apply to cmd: the top-level ones, then its
// own table's.
func (cf *ConfigFile) values(cmd *cobra.Command) (map[string]any, map[string]string) {
	out, where := map[string]any{}, map[string]string{}
	for k, v := range cf.raw {
		if _, table := v.(map[string]any); !table {
			out[k], where[k] = v, ""
		}
	}
	// The command's table: [provide], [provider.status].
	path := strings.Fields(cmd.CommandPath())[1:]
	t := cf.raw
	for _, name := range path {
		next, ok := t[name].(map[string]any)
		if !ok {
			return out, where
		}
		t = next
	}
	if len(path) > 0 {
		for k, v := range t {
			if _, table := v.(map[string]any); !table {
				out[k], where[k] = v, "["+strings.Join(path, ".")+"] "
			}
		}
	}
	return out, where
}

// envOfFlag is the variable a flag's default comes from, as its help
// names it ("(env ZENNET_SEEDS)", "env ZENNET_CONFIG_DIR").
var envOfFlag = regexp.MustCompile(`\benv (ZENNET_[A-Z0-9_]+)`)

// FlagEnv returns the environment variable f's default comes from, if
// its help names one.
func FlagEnv(f *pflag.Flag) string {
	if m := envOfFlag.FindStringSubmatch(f.Usage); m != nil {
		return m[1]
	}
	return ""
}

// Apply sets the flags of cmd that the command line and the environment
// leave alone from the file, and returns the names it set. A key of the
// command's own table that is not one of its flags is a usage error; a
// top-level key is for any command, and must be a flag of one.
func (cf *ConfigFile) Apply(cmd *cobra.Command, known func(string) bool) ([]string, error) {
	vals, where := cf.values(cmd)
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var set []string
	for _, k := range keys {
		f := cmd.Flags().Lookup(k)
		if f == nil {
			if where[k] != "" || !known(k) {
				return nil, Usagef("config file %s: %s%s is not a flag of %s; see '%s --help'", cf.Path, where[k], k, cmd.CommandPath(), cmd.CommandPath())
			}
			continue
		}
		if f.Changed {
			continue // the command line wins
		}
		if env := FlagEnv(f); env != "" && os.Getenv(env) != "" {
			continue // so does the environment
		}
		if err := setFlag(f, vals[k]); err != nil {
			return nil, Usagef("config file %s: %s%s = %v: %v", cf.Path, where[k], k, vals[k], err)
		}
		set = append(set, k)
	}
	return set, nil
}

func setFlag(f *pflag.Flag, v any) error {
	if list, ok := v.([]any); ok {
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("--%s takes one value, not a list", f.Name)
		}
		s := make([]string, len(list))
		for i, e := range list {
			s[i] = fmt.Sprint(e)
		}
		return sv.Replace(s)
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.Replace([]string{fmt.Sprint(v)})
	}
	return f.Value.Set(fmt.Sprint(v))
}

// AddConfigFile makes every command under root read the config file of
// the config dir configDir gives (after the flags are parsed) before it
// runs.
func AddConfigFile(root *cobra.Command, configDir func() string) {
	known := KnownFlags(root)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return // zennet agent: run inside sandboxes, by zennet
		}
		prev := c.PreRunE
		c.PreRunE = func(cmd *cobra.Command, args []string) error {
			cf, err := LoadConfigFile(filepath.Join(configDir(), ConfigFileName))
			if err != nil {
				return err
			}
			if _, err := cf.Apply(cmd, known); err != nil {
				return err
			}
			if prev != nil {
				return prev(cmd, args)
			}
			return nil
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// KnownFlags reports whether some command under root has flag name.
func KnownFlags(root *cobra.Command) func(string) bool {
	names := map[string]bool{}
	var collect func(c *cobra.Command)
	collect = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, s := range c.Commands() {
			collect(s)
		}
	}
	collect(root)
	return func(n string) bool { return names[n] }
}
