// Package pay bills metered usage and pays for it, interval by interval.
//
// The bill of an interval is the lease's Rates (msat per unit of each meter
// counter, exact rationals) times the counter deltas of the interval's usage
// report. An Accumulator adds bills up in whole millisatoshi and carries the
// exact sub-msat remainder to the next interval, so nothing is ever lost or
// billed twice. Amounts below a method's payable minimum (lnd refuses HTLCs
// under 1000 msat by default) stay due until they add up to a payable amount.
//
// Payments go through one of two methods behind the Payer and Payee
// interfaces, chosen in negotiation:
//   - "embedded" (the default, no setup): the renter signs a cumulative,
//     monotone Voucher with its SSH key each interval; the provider verifies
//     it and keeps the latest as its claim.
//   - "lightning": the provider's lnd issues an invoice for the amount due,
//     the renter's lnd pays it (routerrpc SendPaymentV2) after checking the
//     amount against its own bill, and the provider counts it once its lnd
//     reports the invoice settled.
//
// A Ledger (bbolt) records every report, bill and payment before it is acted
// on: a payment is first written as a pending intent, then sent, then marked
// done or failed. After a crash, Renter.Reconcile and Provider.Reconcile ask
// the method what became of each pending intent, so no payment is lost and
// none is counted twice. Renter and Provider tie a lease's accumulator,
// method and ledger together; their Status is what an enforcement loop reads.
//
// docs/payments.md describes the flow, the amounts and the Lightning setup.
package pay
