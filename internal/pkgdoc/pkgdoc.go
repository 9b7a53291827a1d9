// Package pkgdoc holds the test that every package of the module says
// what it is for in a package doc comment.
package pkgdoc
