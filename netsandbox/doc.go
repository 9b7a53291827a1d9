// Package netsandbox gives each gVisor sandbox a user-mode network of its
// own with an egress policy, DNS and byte counters.
//
// A Network is a fresh network namespace holding one tap device, eth0,
// addressed 10.0.2.2/24 with a default route via 10.0.2.1. runsc started
// with --network=sandbox in that namespace (the OCI spec's network
// namespace path is NetnsPath) copies the interface into the sandbox and
// sends its frames through the tap. The provider process serves the tap's
// other end in-process with gvisor-tap-vsock's gateway link endpoint and a
// gVisor netstack: ARP, ping of the gateway, a DNS server on it, and TCP and
// UDP forwarders that open each of the sandbox's connections from the
// provider, after checking the destination against the Policy and again
// against the address the provider's socket actually connects to.
// Published services (Service) are reachable at virtual IPs whatever the
// policy.
//
// A Network serves one sandbox: runsc moves the address off the tap into
// the sandbox, so a second sandbox started in the namespace would find none.
//
// Networks share no state: every one uses the same addresses, and a
// sandbox cannot reach another sandbox, the provider's own addresses or its
// LAN under PolicyPublic. The namespace is referenced only by open files of
// this process, never mounted, so that Close, or the provider's death,
// removes the tap and, once the sandbox has exited, the namespace.
package netsandbox
