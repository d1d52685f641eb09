package config

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Bounds on what a config may make the parser and its functions do. HCL's
// parser and evaluator recurse once per level of nesting and per operator
// of a chain, and a Go stack overflow is fatal, not an error: a config
// nested 100,000 brackets deep (or a 2,000,000-operator chain) killed the
// process. No real config comes near these limits.
const (
	// MaxNesting bounds how deeply brackets, braces, parentheses, strings,
	// template interpolations and unary operators nest.
	MaxNesting = 100
	// MaxOperators bounds the operators of one expression.
	MaxOperators = 1000
	// MaxConfigBytes bounds a config file.
	MaxConfigBytes = 8 << 20
	// MaxFileFuncBytes bounds what file() reads.
	MaxFileFuncBytes = 1 << 20
	// MaxPasswdBytes bounds the passwd file passwd_users() reads.
	MaxPasswdBytes = 16 << 20
)

// level is one open bracket of checkNesting's walk.
type level struct {
	opener    hclsyntax.TokenType
	operators int
}

// checkNesting refuses, before the parser sees them, sources that would
// make it or the evaluator recurse too deeply. It works on the lexer's
// tokens, which come from a state machine without recursion.
func checkNesting(src []byte, filename string) hcl.Diagnostics {
	tokens, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	levels := []level{{opener: hclsyntax.TokenOBrace}} // the file body
	unary := 0
	tooDeep := func(rng hcl.Range) hcl.Diagnostics {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Config nested too deeply",
			Detail: fmt.Sprintf("Brackets, braces, parentheses, strings, templates and unary operators nest more than %d levels deep here. "+
				"sluice refuses such a config rather than risk running out of stack.", MaxNesting),
			Subject: rng.Ptr(),
		}}
	}
	for _, tok := range tokens {
		cur := &levels[len(levels)-1]
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenOQuote,
			hclsyntax.TokenOHeredoc, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			levels = append(levels, level{opener: tok.Type})
			if len(levels)-1+unary > MaxNesting {
				return tooDeep(tok.Range)
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenCQuote,
			hclsyntax.TokenCHeredoc, hclsyntax.TokenTemplateSeqEnd:
			if len(levels) > 1 {
				levels = levels[:len(levels)-1]
			}
		case hclsyntax.TokenComma:
			cur.operators = 0
		case hclsyntax.TokenNewline:
			// In a body or an object, a newline ends the expression; in
			// parentheses and tuples the expression goes on.
			if cur.opener == hclsyntax.TokenOBrace {
				cur.operators = 0
			}
		case hclsyntax.TokenPlus, hclsyntax.TokenMinus, hclsyntax.TokenStar, hclsyntax.TokenSlash, hclsyntax.TokenPercent,
			hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual, hclsyntax.TokenLessThan, hclsyntax.TokenLessThanEq,
			hclsyntax.TokenGreaterThan, hclsyntax.TokenGreaterThanEq, hclsyntax.TokenAnd, hclsyntax.TokenOr,
			hclsyntax.TokenBang, hclsyntax.TokenQuestion, hclsyntax.TokenColon:
			if cur.operators++; cur.operators > MaxOperators {
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Expression too long",
					Detail:   fmt.Sprintf("This expression has more than %d operators; sluice refuses it rather than risk running out of stack.", MaxOperators),
					Subject:  tok.Range.Ptr(),
				}}
			}
		}
		if tok.Type == hclsyntax.TokenBang || tok.Type == hclsyntax.TokenMinus {
			if unary++; len(levels)-1+unary > MaxNesting {
				return tooDeep(tok.Range)
			}
		} else {
			unary = 0
		}
	}
	return nil
}

// readRegularFile reads the regular file at path, refusing anything else
// (a FIFO would block, a device like /dev/zero never ends) and anything
// longer than limit bytes. what names the file in errors.
func readRegularFile(path string, limit int64, what string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file (%s)", what, path, kindOf(st.Mode()))
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s %s is %d bytes, more than the %d allowed", what, path, st.Size(), limit)
	}
	// The size can change while reading: read one byte past the limit to
	// notice.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s is more than the %d bytes allowed", what, path, limit)
	}
	return b, nil
}

func kindOf(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not regular"
}
