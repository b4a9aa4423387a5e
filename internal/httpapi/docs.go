package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
)

// The API reference at GET /docs: openapi.yaml rendered once, on the
// server, into one self-contained HTML page. No script, no CDN, no build
// step; the one stylesheet is inline and allowed by its hash in the
// Content-Security-Policy, so the page loads nothing at all.

// docsCSS is the page's only style.
const docsCSS = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fff}
header,main,nav{max-width:60rem;margin:0 auto;padding:0 1rem}
header{border-bottom:1px solid #d0d7de;padding-bottom:.5rem}
h1{margin:.8rem 0 .2rem}h2{margin-top:2.5rem;border-bottom:1px solid #d0d7de}
h3{margin:2rem 0 .3rem;font:600 1rem ui-monospace,monospace;word-break:break-all}
h4{margin:1rem 0 .3rem}
code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f5f7;border-radius:3px}
code{padding:0 .2em}pre{padding:.6rem;overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:.3rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.m{display:inline-block;min-width:4.2em;text-align:center;border-radius:3px;color:#fff;padding:0 .3em;margin-right:.4em;text-transform:uppercase;font:600 12px ui-monospace,monospace;line-height:1.6}
.get{background:#1a7f37}.post{background:#0969da}.put{background:#9a6700}.delete{background:#cf222e}
.op{border-left:3px solid #d0d7de;padding-left:.8rem;margin-top:1.5rem}
.note{color:#57606a}
nav ul{list-style:none;padding:0;font-size:14px}
nav li{margin:.1rem 0}
ul.schema{list-style:none;padding-left:1.1rem;margin:.2rem 0}
`

// docsPolicy allows the inline stylesheet above and nothing else.
var docsPolicy = func() string {
	sum := sha256.Sum256([]byte(docsCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}()

// docsPage is openapi.yaml rendered, built at its first request.
var docsPage = sync.OnceValues(func() ([]byte, error) { return renderDocs(OpenAPI) })

func (s *Server) docs(c echo.Context) error {
	page, err := docsPage()
	if err != nil {
		return fmt.Errorf("render openapi.yaml: %w", err)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", docsPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	return c.HTMLBlob(http.StatusOK, page)
}

// The page's model.
type (
	docsView struct {
		Title, Version string
		Summary, Intro template.HTML
		CSS            template.CSS
		Ops            []docsOp
		Schemas        []docsSchema
	}
	docsOp struct {
		ID, Method, Path string
		Summary, Desc    template.HTML
		Public           bool
		Params           []docsParam
		Bodies           []docsBody
		Responses        []docsResponse
	}
	docsParam struct {
		Name, In string
		Required bool
		Type     template.HTML
		Desc     template.HTML
	}
	docsBody struct {
		MediaType string
		Schema    template.HTML
		Example   string
	}
	docsResponse struct {
		Code    string
		Desc    template.HTML
		Headers []string
		Bodies  []docsBody
	}
	docsSchema struct {
		Name string
		Body template.HTML
	}
)

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}} API reference</title>
<style>{{.CSS}}</style></head>
<body>
<header><h1>{{.Title}} API <small class="note">{{.Version}}</small></h1>
<p>{{.Summary}} This page is <a href="/openapi.yaml">/openapi.yaml</a> (OpenAPI 3.1), rendered.</p></header>
<main>
{{.Intro}}
<h2 id="operations">Operations</h2>
<nav><ul>{{range .Ops}}<li><a href="#{{.ID}}"><span class="m {{.Method}}">{{.Method}}</span>{{.Path}}</a></li>{{end}}</ul></nav>
{{range .Ops}}<section class="op" id="{{.ID}}">
<h3><span class="m {{.Method}}">{{.Method}}</span>{{.Path}}</h3>
<p>{{.Summary}}{{if .Public}} <em class="note">No credentials.</em>{{end}}</p>
{{.Desc}}
{{with .Params}}<h4>Parameters</h4>
<table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>
{{range .}}<tr><td><code>{{.Name}}</code>{{if .Required}} <em>required</em>{{end}}</td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Desc}}</td></tr>
{{end}}</table>{{end}}
{{with .Bodies}}<h4>Request body</h4>{{range .}}<p><code>{{.MediaType}}</code></p>{{.Schema}}{{with .Example}}<p class="note">Example:</p><pre>{{.}}</pre>{{end}}{{end}}{{end}}
<h4>Responses</h4>
<table><tr><th>status</th><th>meaning</th></tr>
{{range .Responses}}<tr><td><code>{{.Code}}</code></td><td>{{.Desc}}{{range .Headers}} <span class="note">header</span> <code>{{.}}</code>{{end}}
{{range .Bodies}}<div><code>{{.MediaType}}</code> {{.Schema}}</div>{{end}}</td></tr>
{{end}}</table>
</section>
{{end}}
<h2 id="schemas">Schemas</h2>
{{range .Schemas}}<section id="schema-{{.Name}}"><h3>{{.Name}}</h3>{{.Body}}</section>
{{end}}
</main></body></html>
`))

// renderDocs renders an OpenAPI 3.1 document as the reference page.
func renderDocs(spec []byte) ([]byte, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, err
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, err
	}
	m := &model.Model
	v := docsView{CSS: template.CSS(docsCSS)}
	if m.Info != nil {
		v.Title, v.Version = m.Info.Title, m.Info.Version
		v.Summary, v.Intro = inlineText(m.Info.Summary), prose(m.Info.Description)
	}
	if m.Paths != nil {
		for path, item := range m.Paths.PathItems.FromOldest() {
			for method, op := range item.GetOperations().FromOldest() {
				v.Ops = append(v.Ops, docsOperation(path, method, item, op))
			}
		}
	}
	if m.Components != nil && m.Components.Schemas != nil {
		for name, sp := range m.Components.Schemas.FromOldest() {
			v.Schemas = append(v.Schemas, docsSchema{Name: name, Body: schemaHTML(sp, 0, true)})
		}
	}
	var b bytes.Buffer
	if err := docsTemplate.Execute(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var nonID = regexp.MustCompile(`[^a-z0-9]+`)

func docsOperation(path, method string, item *v3.PathItem, op *v3.Operation) docsOp {
	o := docsOp{
		ID:     strings.Trim(nonID.ReplaceAllString(method+"-"+strings.ToLower(path), "-"), "-"),
		Method: strings.ToLower(method), Path: path,
		Summary: inlineText(op.Summary), Desc: prose(op.Description),
		// An operation's empty security list lifts the document's.
		Public: op.Security != nil && len(op.Security) == 0,
	}
	for _, p := range append(append([]*v3.Parameter{}, item.Parameters...), op.Parameters...) {
		o.Params = append(o.Params, docsParam{Name: p.Name, In: p.In, Required: p.Required != nil && *p.Required,
			Type: typeHTML(p.Schema), Desc: prose(firstOf(p.Description, schemaDescription(p.Schema)))})
	}
	if op.RequestBody != nil {
		o.Bodies = bodies(op.RequestBody.Content, true)
	}
	if op.Responses != nil && op.Responses.Codes != nil {
		for code, r := range op.Responses.Codes.FromOldest() {
			dr := docsResponse{Code: code, Desc: inlineText(r.Description), Bodies: bodies(r.Content, false)}
			if r.Headers != nil {
				for name := range r.Headers.KeysFromOldest() {
					dr.Headers = append(dr.Headers, name)
				}
			}
			o.Responses = append(o.Responses, dr)
		}
	}
	return o
}

// bodies renders each media type of a request or response body: requests
// in full, responses by a link or a short form (most are a shared schema).
func bodies(content *orderedmap.Map[string, *v3.MediaType], full bool) []docsBody {
	if content == nil {
		return nil
	}
	var out []docsBody
	for mt, media := range content.FromOldest() {
		b := docsBody{MediaType: mt}
		if media.Schema != nil {
			if full || media.Schema.IsReference() {
				b.Schema = schemaHTML(media.Schema, 0, full)
			} else {
				b.Schema = schemaHTML(media.Schema, 0, true)
			}
		}
		if media.Example != nil {
			var x any
			if err := media.Example.Decode(&x); err == nil {
				if j, err := json.MarshalIndent(x, "", "  "); err == nil {
					b.Example = string(j)
				}
			}
		}
		out = append(out, b)
	}
	return out
}

// refName is the component a schema proxy refers to, if any.
func refName(sp *base.SchemaProxy) string {
	if sp == nil || !sp.IsReference() {
		return ""
	}
	ref := sp.GetReference()
	return ref[strings.LastIndex(ref, "/")+1:]
}

// typeHTML is a schema's type in a few words: a link to a component, or
// the type with its constraints.
func typeHTML(sp *base.SchemaProxy) template.HTML {
	if sp == nil {
		return ""
	}
	if name := refName(sp); name != "" {
		return template.HTML(`<a href="#schema-` + template.HTMLEscapeString(name) + `">` + template.HTMLEscapeString(name) + `</a>`)
	}
	s := sp.Schema()
	if s == nil {
		return ""
	}
	t := strings.Join(s.Type, " | ")
	if t == "" {
		t = "any"
	}
	out := template.HTMLEscapeString(t)
	if s.Items != nil && s.Items.IsA() {
		out = "array of " + string(typeHTML(s.Items.A))
	}
	var extra []string
	if s.Format != "" {
		extra = append(extra, s.Format)
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, n := range s.Enum {
			vals = append(vals, n.Value)
		}
		extra = append(extra, "one of "+strings.Join(vals, ", "))
	}
	if s.Const != nil {
		extra = append(extra, "always "+s.Const.Value)
	}
	if s.Pattern != "" {
		extra = append(extra, "pattern "+s.Pattern)
	}
	if s.Minimum != nil || s.Maximum != nil {
		extra = append(extra, "range "+num(s.Minimum)+"…"+num(s.Maximum))
	}
	if s.MinLength != nil || s.MaxLength != nil {
		extra = append(extra, "length "+inum(s.MinLength)+"…"+inum(s.MaxLength))
	}
	if s.MinItems != nil || s.MaxItems != nil {
		extra = append(extra, "items "+inum(s.MinItems)+"…"+inum(s.MaxItems))
	}
	if s.Default != nil {
		extra = append(extra, "default "+s.Default.Value)
	}
	if len(extra) > 0 {
		out += ` <span class="note">(` + template.HTMLEscapeString(strings.Join(extra, "; ")) + `)</span>`
	}
	return template.HTML(out)
}

func num(f *float64) string {
	if f == nil {
		return ""
	}
	return fmt.Sprint(*f)
}

func inum(i *int64) string {
	if i == nil {
		return ""
	}
	return fmt.Sprint(*i)
}

func schemaDescription(sp *base.SchemaProxy) string {
	if sp == nil || sp.IsReference() {
		return ""
	}
	if s := sp.Schema(); s != nil {
		return s.Description
	}
	return ""
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// schemaHTML renders a schema: its type, its description and, for objects
// (or arrays of objects), a nested list of its properties. A reference is a
// link unless expand asks for the component's own rendering (the Schemas
// section). Depth bounds the nesting.
func schemaHTML(sp *base.SchemaProxy, depth int, expand bool) template.HTML {
	if sp == nil {
		return ""
	}
	if refName(sp) != "" && !expand {
		return typeHTML(sp)
	}
	s := sp.Schema()
	if s == nil {
		return ""
	}
	var b strings.Builder
	if depth == 0 {
		b.WriteString(string(typeHTML(sp)))
		if refName(sp) == "" || expand {
			if d := prose(s.Description); d != "" && refName(sp) == "" {
				b.WriteString(string(d))
			}
		}
	}
	props := s.Properties
	if s.Items != nil && s.Items.IsA() && refName(s.Items.A) == "" {
		if is := s.Items.A.Schema(); is != nil {
			props = is.Properties
			s = is
		}
	}
	if props == nil || props.Len() == 0 || depth > 4 {
		return template.HTML(b.String())
	}
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	b.WriteString(`<ul class="schema">`)
	for name, p := range props.FromOldest() {
		b.WriteString("<li><code>" + template.HTMLEscapeString(name) + "</code> ")
		b.WriteString(string(typeHTML(p)))
		if required[name] {
			b.WriteString(" <em>required</em>")
		}
		if d := schemaDescription(p); d != "" {
			b.WriteString(" — " + string(inlineText(d)))
		}
		if refName(p) == "" {
			b.WriteString(string(schemaHTML(p, depth+1, false)))
		}
		b.WriteString("</li>")
	}
	b.WriteString("</ul>")
	return template.HTML(b.String())
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// inlineText escapes text and turns its `code` spans into <code>.
func inlineText(s string) template.HTML {
	s = template.HTMLEscapeString(strings.TrimSpace(s))
	return template.HTML(codeSpan.ReplaceAllString(s, "<code>$1</code>"))
}

// prose renders a description: paragraphs separated by blank lines.
func prose(s string) template.HTML {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, para := range strings.Split(s, "\n\n") {
		if para = strings.TrimSpace(para); para != "" {
			b.WriteString("<p>" + string(inlineText(strings.Join(strings.Fields(para), " "))) + "</p>")
		}
	}
	return template.HTML(b.String())
}
