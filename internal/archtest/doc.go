// Package archtest holds the tests of the module's layout (docs/architecture.md): which rooms may import
// which, and which may write to the terminal. It has no code of its own.
package archtest
