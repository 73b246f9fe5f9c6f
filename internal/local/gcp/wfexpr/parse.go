package wfexpr

import (
	"strings"
)

// node is one AST node; evaluation and printing switch on the concrete type.
type node interface{ isNode() }

type (
	litNode    struct{ v any } // nil, bool, int64, float64, string
	identNode  struct{ name string }
	memberNode struct {
		x    node
		name string
	}
	indexNode struct{ x, idx node }
	callNode  struct {
		name string
		args []node
		fn   *builtin // nil when the environment implements name
	}
	unaryNode struct {
		op tokKind // tMinus or tNot
		x  node
	}
	binaryNode struct {
		op   tokKind
		l, r node
	}
	listNode struct{ elems []node }
	mapNode  struct {
		keys []string
		vals []node
	}
)

func (*litNode) isNode()    {}
func (*identNode) isNode()  {}
func (*memberNode) isNode() {}
func (*indexNode) isNode()  {}
func (*callNode) isNode()   {}
func (*unaryNode) isNode()  {}
func (*binaryNode) isNode() {}
func (*listNode) isNode()   {}
func (*mapNode) isNode()    {}

// Binding powers, loosest first, following the documented order of
// operations (https://cloud.google.com/workflows/docs/reference/syntax/datatypes,
// "Order of operations"): or < and < comparison/equality/in < + - <
// * / // % < unary minus < not < [] and . < ().
// Note that the table puts not above the arithmetic and comparison
// operators, so `not a == b` is `(not a) == b`; write `not (a == b)`.
const (
	precOr = iota + 1
	precAnd
	precCmp
	precAdd
	precMul
	precNeg
	precNot
	precPostfix
	precAtom
)

func binaryPrec(k tokKind) int {
	switch k {
	case tOr:
		return precOr
	case tAnd:
		return precAnd
	case tEq, tNe, tLt, tLe, tGt, tGe, tIn:
		return precCmp
	case tPlus, tMinus:
		return precAdd
	case tStar, tSlash, tSlashSlash, tPercent:
		return precMul
	}
	return 0
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 200

type parser struct {
	lx    lexer
	tok   token
	depth int
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) parse() (node, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, p.lx.syntaxError(p.tok.pos, "empty expression")
	}
	n, err := p.expr(precOr)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.lx.syntaxError(p.tok.pos, "unexpected %s", p.describe())
	}
	return n, nil
}

func (p *parser) describe() string {
	t := p.tok
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tIdent:
		return "name " + t.text
	case tInt, tDouble:
		return "number"
	case tString:
		return "string"
	}
	if t.text != "" {
		return "'" + t.text + "'"
	}
	return "'" + p.lx.src[t.pos:p.lx.off] + "'"
}

func (p *parser) expect(k tokKind, what string) error {
	if p.tok.kind != k {
		return p.lx.syntaxError(p.tok.pos, "expected %s, found %s", what, p.describe())
	}
	return p.advance()
}

// expr parses operators binding at least as tightly as minPrec.
func (p *parser) expr(minPrec int) (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, p.lx.syntaxError(p.tok.pos, "expression nested too deeply")
	}
	left, err := p.prefix()
	if err != nil {
		return nil, err
	}
	for {
		op := p.tok.kind
		prec := binaryPrec(op)
		if prec == 0 || prec < minPrec {
			return left, nil
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.expr(prec + 1) // left-associative
		if err != nil {
			return nil, err
		}
		left = &binaryNode{op: op, l: left, r: right}
	}
}

func (p *parser) prefix() (node, error) {
	switch p.tok.kind {
	case tMinus, tNot:
		op := p.tok.kind
		if err := p.advance(); err != nil {
			return nil, err
		}
		prec := precNeg
		if op == tNot {
			prec = precNot
		}
		x, err := p.expr(prec + 1)
		if err != nil {
			return nil, err
		}
		return &unaryNode{op: op, x: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (node, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch p.tok.kind {
		case tDot:
			if err := p.advance(); err != nil {
				return nil, err
			}
			name, ok := p.name()
			if !ok {
				return nil, p.lx.syntaxError(p.tok.pos, "expected a name after '.', found %s", p.describe())
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			x = &memberNode{x: x, name: name}
		case tLBrack:
			if err := p.advance(); err != nil {
				return nil, err
			}
			idx, err := p.expr(precOr)
			if err != nil {
				return nil, err
			}
			if err := p.expect(tRBrack, "']'"); err != nil {
				return nil, err
			}
			x = &indexNode{x: x, idx: idx}
		case tLParen:
			pos := p.tok.pos
			name, ok := dottedName(x)
			if !ok {
				return nil, p.lx.syntaxError(pos, "only named functions can be called")
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			args, err := p.list(tRParen, "')'")
			if err != nil {
				return nil, err
			}
			call := &callNode{name: name, args: args}
			if b, ok := builtins[name]; ok {
				if len(args) < b.minArgs || len(args) > b.maxArgs {
					return nil, p.lx.syntaxError(pos, "%s takes %s, got %d", name, b.arity(), len(args))
				}
				call.fn = b
			}
			x = call
		default:
			return x, nil
		}
	}
}

// name accepts an identifier or a keyword spelling as a field name after '.'.
func (p *parser) name() (string, bool) {
	switch p.tok.kind {
	case tIdent, tTrue, tFalse, tNull, tAnd, tOr, tNot, tIn:
		return p.tok.text, true
	}
	return "", false
}

// dottedName turns a.b.c into "a.b.c" when the callee is a plain name path.
func dottedName(n node) (string, bool) {
	switch x := n.(type) {
	case *identNode:
		return x.name, true
	case *memberNode:
		prefix, ok := dottedName(x.x)
		if !ok {
			return "", false
		}
		return prefix + "." + x.name, true
	}
	return "", false
}

// list parses comma-separated expressions up to the closing token.
func (p *parser) list(closing tokKind, what string) ([]node, error) {
	var elems []node
	if p.tok.kind == closing {
		return elems, p.advance()
	}
	for {
		e, err := p.expr(precOr)
		if err != nil {
			return nil, err
		}
		elems = append(elems, e)
		if p.tok.kind == tComma {
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		}
		return elems, p.expect(closing, what+" or ','")
	}
}

func (p *parser) primary() (node, error) {
	t := p.tok
	var n node
	switch t.kind {
	case tInt:
		n = &litNode{v: t.i}
	case tDouble:
		n = &litNode{v: t.f}
	case tString:
		n = &litNode{v: t.text}
	case tTrue:
		n = &litNode{v: true}
	case tFalse:
		n = &litNode{v: false}
	case tNull:
		n = &litNode{v: nil}
	case tIdent:
		n = &identNode{name: t.text}
	case tLParen:
		if err := p.advance(); err != nil {
			return nil, err
		}
		inner, err := p.expr(precOr)
		if err != nil {
			return nil, err
		}
		return inner, p.expect(tRParen, "')'")
	case tLBrack:
		// Decision: list and map literals are accepted inside expressions,
		// as used in documented samples such as `"a" in ["a", "b"]`.
		if err := p.advance(); err != nil {
			return nil, err
		}
		elems, err := p.list(tRBrack, "']'")
		if err != nil {
			return nil, err
		}
		return &listNode{elems: elems}, nil
	case tLBrace:
		return p.mapLiteral()
	default:
		return nil, p.lx.syntaxError(t.pos, "unexpected %s", p.describe())
	}
	return n, p.advance()
}

// mapLiteral parses {"k": v, …}. Decision: keys must be string literals
// (a bare word would be ambiguous between a variable and a YAML-style key),
// and a repeated key is a syntax error.
func (p *parser) mapLiteral() (node, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	m := &mapNode{}
	if p.tok.kind == tRBrace {
		return m, p.advance()
	}
	for {
		if p.tok.kind != tString {
			return nil, p.lx.syntaxError(p.tok.pos, "expected a quoted map key, found %s", p.describe())
		}
		key, pos := p.tok.text, p.tok.pos
		for _, k := range m.keys {
			if k == key {
				return nil, p.lx.syntaxError(pos, "duplicate map key %q", key)
			}
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if err := p.expect(tColon, "':'"); err != nil {
			return nil, err
		}
		v, err := p.expr(precOr)
		if err != nil {
			return nil, err
		}
		m.keys = append(m.keys, key)
		m.vals = append(m.vals, v)
		if p.tok.kind == tComma {
			if err := p.advance(); err != nil {
				return nil, err
			}
			continue
		}
		return m, p.expect(tRBrace, "'}' or ','")
	}
}

// collect gathers root variable names and called function names.
func collect(n node, vars, funcs *[]string) {
	switch x := n.(type) {
	case *identNode:
		*vars = append(*vars, x.name)
	case *memberNode:
		collect(x.x, vars, funcs)
	case *indexNode:
		collect(x.x, vars, funcs)
		collect(x.idx, vars, funcs)
	case *callNode:
		*funcs = append(*funcs, x.name)
		for _, a := range x.args {
			collect(a, vars, funcs)
		}
	case *unaryNode:
		collect(x.x, vars, funcs)
	case *binaryNode:
		collect(x.l, vars, funcs)
		collect(x.r, vars, funcs)
	case *listNode:
		for _, e := range x.elems {
			collect(e, vars, funcs)
		}
	case *mapNode:
		for _, e := range x.vals {
			collect(e, vars, funcs)
		}
	}
}

// precOf is the binding power of a node when printed.
func precOf(n node) int {
	switch x := n.(type) {
	case *binaryNode:
		return binaryPrec(x.op)
	case *unaryNode:
		if x.op == tNot {
			return precNot
		}
		return precNeg
	case *memberNode, *indexNode, *callNode:
		return precPostfix
	}
	return precAtom
}

var opText = map[tokKind]string{
	tOr: "or", tAnd: "and", tNot: "not", tIn: "in",
	tEq: "==", tNe: "!=", tLt: "<", tLe: "<=", tGt: ">", tGe: ">=",
	tPlus: "+", tMinus: "-", tStar: "*", tSlash: "/", tSlashSlash: "//", tPercent: "%",
}

func writeParen(b *strings.Builder, n node, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	write(b, n)
	if paren {
		b.WriteByte(')')
	}
}

// write prints n with the fewest parentheses that preserve the tree.
func write(b *strings.Builder, n node) {
	switch x := n.(type) {
	case *litNode:
		writeLiteral(b, x.v)
	case *identNode:
		b.WriteString(x.name)
	case *memberNode:
		writeParen(b, x.x, precOf(x.x) < precPostfix)
		b.WriteByte('.')
		b.WriteString(x.name)
	case *indexNode:
		writeParen(b, x.x, precOf(x.x) < precPostfix)
		b.WriteByte('[')
		write(b, x.idx)
		b.WriteByte(']')
	case *callNode:
		b.WriteString(x.name)
		b.WriteByte('(')
		for i, a := range x.args {
			if i > 0 {
				b.WriteString(", ")
			}
			write(b, a)
		}
		b.WriteByte(')')
	case *unaryNode:
		if x.op == tNot {
			b.WriteString("not ")
		} else {
			b.WriteByte('-')
		}
		// A prefix operator takes any prefix or postfix operand as it is;
		// only a binary operand needs parentheses.
		writeParen(b, x.x, precOf(x.x) < precNeg)
	case *binaryNode:
		p := binaryPrec(x.op)
		writeParen(b, x.l, precOf(x.l) < p)
		b.WriteByte(' ')
		b.WriteString(opText[x.op])
		b.WriteByte(' ')
		writeParen(b, x.r, precOf(x.r) <= p)
	case *listNode:
		b.WriteByte('[')
		for i, e := range x.elems {
			if i > 0 {
				b.WriteString(", ")
			}
			write(b, e)
		}
		b.WriteByte(']')
	case *mapNode:
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeString(b, k)
			b.WriteString(": ")
			write(b, x.vals[i])
		}
		b.WriteByte('}')
	}
}
