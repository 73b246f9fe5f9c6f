package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// userText checks free text a person typed (justifications, reasons).
func userText(s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", errors.New("is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return "", fmt.Errorf("must be at most %d characters, got %d", max, n)
	}
	for _, r := range s {
		if unicode.IsGraphic(r) && !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) {
			return s, nil
		}
	}
	return "", errors.New("is blank")
}
