package renter

import (
	"fmt"

	gossh "golang.org/x/crypto/ssh"

	"github.com/zennet/zennet/bench"
	"github.com/zennet/zennet/pay"
	"github.com/zennet/zennet/proto"
	"github.com/zennet/zennet/terms"
)

// accept checks an offer of the provider whose host key is hostKey
// (terms.Accept) and who signed its calibration set: signer says who
// (terms.SignerOf, "" without a set), and with TrustCalibration set the
// signer must be the provider's own key or one of those.
func (o *Config) accept(offer proto.Offer, hostKey gossh.PublicKey) (method string, rates pay.Rates, calib *bench.Set, signer string, err error) {
	method, rates, calib, err = terms.Accept(o.Pay, offer)
	if err != nil || calib == nil {
		return method, rates, calib, "", err
	}
	signer = terms.SignerOf(calib, hostKey)
	if o.TrustCalibration != nil {
		trusted, err := calibrationSigners(o.TrustCalibration)
		if err != nil {
			return method, rates, calib, signer, err
		}
		if err := terms.CheckSigner(calib, hostKey, trusted); err != nil {
			return method, rates, calib, signer, fmt.Errorf("%w (calibration signed by %s)", err, signer)
		}
	}
	return method, rates, calib, signer, nil
}
