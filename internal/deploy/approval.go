package deploy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/jitpipeline/jit/internal/approvallink"
	"github.com/jitpipeline/jit/internal/mail"
	"github.com/jitpipeline/jit/internal/wiring"
)

// csrfLabel separates the pages' form key from the link key it is derived
// from: the two never sign the same thing with the same key.
const csrfLabel = "jit pages csrf v1"

// approvalDeps adds what the approval function alone needs to d: the SMTP
// sender (its password read from Secret Manager), the approval link keys,
// the pages' form key, and the mail and pages settings. ctx must outlive
// the instance, as deps' does. cfg has been validated (ValidateFor).
func approvalDeps(ctx context.Context, cfg Config, function string, d *wiring.Deps) error {
	sm, err := approvallink.NewSecretManagerClient(ctx)
	if err != nil {
		return err
	}
	port, err := cfg.smtpPort()
	if err != nil {
		return err
	}
	smtp := mail.SMTPConfig{
		Host: cfg.SMTPHost, Port: port, Security: cfg.SMTPSecurity, Username: cfg.SMTPUsername,
		From: cfg.MailFrom, Clock: d.Clock, Logger: d.Logger.With("function", function, "component", "smtp"),
	}
	if cfg.SMTPPasswordSecret != "" {
		if smtp.Password, err = smtpPassword(ctx, sm, cfg.SMTPPasswordSecret); err != nil {
			return err
		}
	}
	if d.Mail, err = mail.NewSMTP(smtp); err != nil {
		return err
	}
	keys := &approvallink.SecretManagerKeys{Client: sm, Secret: cfg.LinkSecret, Clock: d.Clock}
	if d.CSRFKey, err = csrfKey(ctx, keys); err != nil {
		return err
	}
	host, err := pagesHost(cfg.PagesURL)
	if err != nil {
		return err
	}
	d.LinkKeys, d.PagesURL, d.MailFrom, d.MailDomain = keys, cfg.PagesURL, cfg.MailFrom, host
	return nil
}

// smtpPassword reads the SMTP password from the Secret Manager version.
// Errors name the version, never the payload. A trailing line break is
// dropped: `echo … | gcloud secrets versions add --data-file=-` leaves one,
// and the server would refuse the password with it.
func smtpPassword(ctx context.Context, sm approvallink.SecretManagerClient, version string) (string, error) {
	resp, err := sm.AccessSecretVersion(ctx, version)
	if err != nil {
		return "", fmt.Errorf("failed to read the SMTP password from %s: %w", version, err)
	}
	if resp == nil || resp.Payload == nil {
		return "", fmt.Errorf("the SMTP password secret %s: response has no payload", version)
	}
	b, err := base64.StdEncoding.DecodeString(resp.Payload.Data)
	if err != nil {
		return "", fmt.Errorf("the SMTP password secret %s: failed to decode the payload: %w", version, err)
	}
	// Zero counts as absent: the generated struct cannot tell them apart.
	if want := resp.Payload.DataCrc32c; want != 0 && int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) != want {
		return "", fmt.Errorf("the SMTP password secret %s: payload CRC32C mismatch", version)
	}
	password := strings.TrimRight(string(b), "\r\n")
	if password == "" {
		return "", fmt.Errorf("the SMTP password secret %s is empty", version)
	}
	return password, nil
}

// csrfKey derives the pages' form key from the link signing key,
// HMAC-SHA256(key, csrfLabel), so the function has one secret to keep and
// rotate rather than two. It is derived once, when the instance builds the
// function: rotating the link secret (adding a version) rotates the forms'
// key too, as instances are replaced; a form opened before the rotation and
// posted to an instance built after it is refused, and a reload of the
// page fixes it.
func csrfKey(ctx context.Context, keys approvallink.Keys) ([]byte, error) {
	_, key, err := keys.SigningKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read the approval link key the pages' form key is derived from: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("the approval link signing key is empty")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(csrfLabel))
	return mac.Sum(nil), nil
}
