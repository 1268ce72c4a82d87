// Package registry holds the model registry's domain: the types (which are
// also the JSON wire types of the HTTP API), their validation, the rules as
// pure functions, the error codes shared by server and client, and the Store
// interface every storage backend implements.
//
// It must not import any other package of this project.
package registry

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a machine-readable error code. It travels in the `code` member of
// RFC 9457 problem+json bodies, so it is part of the API contract.
type Code string

// Error codes. The HTTP status of each is in the codeStatus table.
const (
	CodeInvalidArgument     Code = "invalid_argument"
	CodeUnauthenticated     Code = "unauthenticated"
	CodePermissionDenied    Code = "permission_denied"
	CodeNotFound            Code = "not_found"
	CodeAlreadyExists       Code = "already_exists"
	CodeConflict            Code = "conflict"
	CodePreconditionFailed  Code = "precondition_failed"
	CodePolicyViolation     Code = "policy_violation"
	CodeIdempotencyMismatch Code = "idempotency_mismatch"
	CodeTooLarge            Code = "too_large"
	CodeInternal            Code = "internal"
	CodeUnavailable         Code = "unavailable"
)

// codeStatus is the one table mapping codes to HTTP statuses; the server
// uses it to answer and the client to interpret answers without a code.
var codeStatus = map[Code]int{
	CodeInvalidArgument:     http.StatusBadRequest,
	CodeUnauthenticated:     http.StatusUnauthorized,
	CodePermissionDenied:    http.StatusForbidden,
	CodeNotFound:            http.StatusNotFound,
	CodeAlreadyExists:       http.StatusConflict,
	CodeConflict:            http.StatusConflict,
	CodePreconditionFailed:  http.StatusPreconditionFailed,
	CodePolicyViolation:     http.StatusUnprocessableEntity,
	CodeIdempotencyMismatch: http.StatusUnprocessableEntity,
	CodeTooLarge:            http.StatusRequestEntityTooLarge,
	CodeInternal:            http.StatusInternalServerError,
	CodeUnavailable:         http.StatusServiceUnavailable,
}

// HTTPStatus returns the HTTP status for a code (500 for unknown codes).
func HTTPStatus(c Code) int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// CodeForStatus guesses a code from an HTTP status, for answers that carry
// no problem+json body (a proxy's 502, say). 409 maps to conflict.
func CodeForStatus(status int) Code {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalidArgument
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusPreconditionFailed:
		return CodePreconditionFailed
	case http.StatusUnprocessableEntity:
		return CodePolicyViolation
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeInternal
}

// Error is the registry's error: a code, a human message and, for
// validation and policy failures, the field and the rule that failed.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Field is the JSON path of the offending field (e.g. "routes[1].weight").
	Field string `json:"field,omitempty"`
	// Rule names the rule that failed (e.g. "pattern", "min_soak").
	Rule string `json:"rule,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Is lets errors.Is(err, registry.ErrNotFound) match any *Error of that code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
	}
	return false
}

// Sentinels for errors.Is checks by code.
var (
	ErrInvalidArgument     = &Error{Code: CodeInvalidArgument}
	ErrUnauthenticated     = &Error{Code: CodeUnauthenticated}
	ErrPermissionDenied    = &Error{Code: CodePermissionDenied}
	ErrNotFound            = &Error{Code: CodeNotFound}
	ErrAlreadyExists       = &Error{Code: CodeAlreadyExists}
	ErrConflict            = &Error{Code: CodeConflict}
	ErrPreconditionFailed  = &Error{Code: CodePreconditionFailed}
	ErrPolicyViolation     = &Error{Code: CodePolicyViolation}
	ErrIdempotencyMismatch = &Error{Code: CodeIdempotencyMismatch}
	ErrTooLarge            = &Error{Code: CodeTooLarge}
	ErrInternal            = &Error{Code: CodeInternal}
	ErrUnavailable         = &Error{Code: CodeUnavailable}
)

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError builds an invalid_argument error naming the field and the rule.
// The message always starts with the field so users see what to fix.
func FieldError(field, rule, format string, args ...any) *Error {
	return &Error{
		Code:    CodeInvalidArgument,
		Field:   field,
		Rule:    rule,
		Message: field + ": " + fmt.Sprintf(format, args...),
	}
}

// PolicyError builds a policy_violation error naming the stage policy rule.
func PolicyError(rule, format string, args ...any) *Error {
	return &Error{
		Code:    CodePolicyViolation,
		Rule:    rule,
		Message: "stage policy rule " + rule + " failed: " + fmt.Sprintf(format, args...),
	}
}

// ErrorCode returns the code of err: its *Error code, or internal.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError returns err as *Error; any other error becomes an internal error
// whose message hides the original (it may hold SQL or paths).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}
