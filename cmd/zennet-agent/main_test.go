package main

import (
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: zennet-agent serve"},
		{[]string{"bench"}, 2, "usage: zennet-agent serve"},
		{[]string{"serve", "--nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--config", "/nonexistent"}, 1, "zennet-agent: read host key: open /nonexistent/host_key"},
	} {
		var stderr strings.Builder
		if code := run(tt.args, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}
