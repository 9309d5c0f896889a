package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/modelship/modelship/suite"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr"`
	Line      int           `xml:"line,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnit writes JUnit XML: one testsuite (properties: endpoint, model,
// client, verdict, pass threshold) with one testcase per case, carrying its
// file and line; a case that failed has a <failure> with the assertion and
// the answer, one that could not run an <error>.
func JUnit(w io.Writer, r *suite.Report) error {
	ts := junitSuite{
		Name: r.Name, Tests: r.Total, Failures: r.Failed, Errors: r.Errored,
		Time:      secs(float64(r.Duration)),
		Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05"),
		Properties: []junitProperty{
			{"endpoint", r.Endpoint}, {"model", r.Model}, {"client", r.Client},
			{"format", string(r.Format)}, {"verdict", string(r.Verdict)},
			{"pass_threshold", fmt.Sprint(r.PassThreshold)}, {"reason", r.Reason},
		},
	}
	for _, c := range r.Cases {
		jc := junitCase{Name: c.Name, Classname: r.Name, File: c.File, Line: c.Line}
		var total float64
		for _, run := range c.Runs {
			total += float64(run.Latency)
		}
		jc.Time = secs(total)
		if p := c.FirstProblem(); p != nil && c.Status != suite.StatusPassed {
			var text strings.Builder
			for _, f := range p.Failures {
				fmt.Fprintf(&text, "%s:%d: %s: %s\n", c.File, f.Line, f.Assertion, f.Message)
			}
			if p.Error != "" {
				fmt.Fprintf(&text, "%s:%d: %s\n", c.File, c.Line, p.Error)
			}
			if p.Body != "" {
				fmt.Fprintf(&text, "response: %s\n", p.Body)
			} else if p.Error == "" {
				fmt.Fprintf(&text, "output: %s\n", p.Output)
			}
			prob := &junitProblem{Message: c.Reason, Text: text.String()}
			if c.Status == suite.StatusError {
				prob.Type = "error"
				jc.Error = prob
			} else {
				prob.Type = "assertion"
				if len(p.Failures) == 0 {
					prob.Type = "response"
				}
				jc.Failure = prob
			}
		}
		if len(c.Runs) > 0 {
			jc.SystemOut = c.Runs[0].Output
		}
		ts.Cases = append(ts.Cases, jc)
	}
	doc := junitSuites{Name: "modelship validate", Tests: ts.Tests, Failures: ts.Failures, Errors: ts.Errors, Time: ts.Time, Suites: []junitSuite{ts}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func secs(s float64) string { return fmt.Sprintf("%.3f", s) }
