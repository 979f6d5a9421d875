package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/betterkey/backend/domain"
)

// errUnsupportedMediaType refuses a body that does not say it is JSON: a body is only read as
// what it claims to be.
var errUnsupportedMediaType = &statusError{status: http.StatusUnsupportedMediaType, code: "UNSUPPORTED_MEDIA_TYPE",
	msg: "the body must be application/json (charset utf-8, if one is named)"}

// bodyRule says whether a route's JSON body may be left out.
type bodyRule int

const (
	bodyRequired bodyRule = iota
	bodyOptional          // an empty body is the same as {}
	// bodyFromVendor is a delivery from Apple or Smartcar: strict about what could be read two
	// ways, tolerant of the media type and of fields the vendor adds without notice, because a
	// refusal there would only make them retry the same delivery forever.
	bodyFromVendor
)

// bindJSON reads the request body into v under the one strict rule every route shares, and
// answers the failure itself (it returns false then):
//   - Content-Type application/json (optionally ;charset=utf-8), else 415;
//   - one JSON object and nothing after it;
//   - valid UTF-8, no NUL and no invalid escape in any string, every name once per object;
//   - only the fields v declares, each of its type.
//
// Every refusal is a 400 VALIDATION_FAILED naming the field, so a client, a proxy and a log
// reader all see the same single reading of the body, and nothing is acted on.
func (a *api) bindJSON(c *gin.Context, v any, rule bodyRule) bool {
	if err := readJSON(c, v, rule); err != nil {
		a.fail(c, err)
		return false
	}
	return true
}

// readJSON is bindJSON for a caller that answers the failure itself.
func readJSON(c *gin.Context, v any, rule bodyRule) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return decodeError(err)
	}
	if len(body) == 0 && rule == bodyOptional {
		return nil
	}
	if rule != bodyFromVendor && !isJSON(c.GetHeader("Content-Type")) {
		return errUnsupportedMediaType
	}
	return decodeStrict(body, v, rule != bodyFromVendor)
}

// isJSON accepts application/json with no parameter but charset=utf-8.
func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// decodeStrict decodes one JSON object from body into v, refusing every ambiguity (see bindJSON).
// encoding/json alone accepts duplicate names (the last wins), trailing values and invalid UTF-8
// (replaced), so a token pass checks those first; the decode after it refuses unknown fields.
func decodeStrict(body []byte, v any, onlyKnownFields bool) error {
	if !utf8.Valid(body) {
		return domain.Invalid("body", "must be UTF-8")
	}
	if err := checkTokens(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if onlyKnownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return decodeFieldError(err)
	}
	return nil
}

// checkTokens walks body's tokens once: an object at the top and nothing after it, no repeated
// name in any object, no NUL or replacement character (what an invalid \u escape decodes to) in
// any name or string.
func checkTokens(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return domain.Invalid("body", "must be a JSON object")
	}
	if err := checkObject(dec, "", 1); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return domain.Invalid("body", "must hold one JSON object and nothing after it")
	}
	return nil
}

// maxDepth bounds nesting: no request nests beyond two levels, and the walk recurses per level.
const maxDepth = 32

// checkObject checks the members of an object whose '{' was read, and its '}'.
func checkObject(dec *json.Decoder, path string, depth int) error {
	if depth > maxDepth {
		return domain.Invalid(orBody(path), "is nested too deeply")
	}
	names := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		name, ok := tok.(string)
		if err != nil || !ok {
			return domain.Invalid(orBody(path), "is not valid JSON")
		}
		field := join(path, name)
		if bad := badString(name); bad != "" {
			return domain.Invalid(orBody(path), "has a name that contains "+bad)
		}
		// encoding/json matches names to fields case-insensitively (Unicode folding included), so
		// "action" and "ACTION" are one field and count as a repeat.
		if key := foldName(name); names[key] {
			return domain.Invalid(field, "appears more than once")
		} else {
			names[key] = true
		}
		if err := checkValue(dec, field, depth); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return domain.Invalid(orBody(path), "is not valid JSON")
	}
	return nil
}

// checkValue checks the next value, named field, inside depth levels of nesting.
func checkValue(dec *json.Decoder, field string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return domain.Invalid(field, "is not valid JSON")
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return checkObject(dec, field, depth+1)
		}
		if depth+1 > maxDepth {
			return domain.Invalid(field, "is nested too deeply")
		}
		for dec.More() { // '[': an object's ']' or '}' never comes here, Token refuses it
			if err := checkValue(dec, field+"[]", depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return domain.Invalid(field, "is not valid JSON")
		}
	case string:
		if bad := badString(t); bad != "" {
			return domain.Invalid(field, "must not contain "+bad)
		}
	}
	return nil
}

// foldName maps every rune to the smallest rune of its Unicode case-folding orbit, so that two
// names encoding/json would match to one field ("s", "S", "ſ") fold alike.
func foldName(name string) string {
	return strings.Map(func(r rune) rune {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		return low
	}, name)
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// badString names what a decoded string must not hold, "" if nothing.
func badString(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return "NUL"
	case strings.ContainsRune(s, utf8.RuneError):
		return "invalid characters"
	}
	return ""
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// decodeFieldError names the field of an encoding/json failure after the token pass: an unknown
// field or a value of the wrong type.
func decodeFieldError(err error) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return domain.Invalid("body", "must be a JSON object")
		}
		return domain.Invalid(te.Field, "must be "+jsonKind(te.Type.Kind().String()))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return domain.Invalid(name, "is not a field of this request")
	}
	return fmt.Errorf("decode body: %w", domain.ErrInvalidRequest)
}

// jsonKind names a Go kind as the JSON type a client must send.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	}
	return "an object"
}
