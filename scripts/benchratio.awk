# benchratio.awk: passes 'go test -bench' output through and, at the end,
# prints for every benchmark of the form PREFIX/sampler/N the ratio of its
# ns/sandbox to PREFIX/readfile/N's: the cost against the raw-read baseline
# measured in the same run.
{ print }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) if ($(i+1) == "ns/sandbox") v[name] = $i
}
END {
	for (n in v) {
		if (n !~ /\/sampler\//) continue
		base = n; sub(/\/sampler\//, "/readfile/", base)
		if (base in v && v[base] > 0)
			printf "ratio %-40s %8.0f ns/sandbox vs raw read %8.0f: %.3fx\n", n, v[n], v[base], v[n] / v[base]
	}
}
