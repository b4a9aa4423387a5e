package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// addEnvHelp appends to the help of every command that reads the
// environment the variables it reads, from the table settings.
func addEnvHelp(root *cobra.Command) {
	for _, cmd := range root.Commands() {
		addEnvHelp(cmd)
		if !cmd.Runnable() {
			continue
		}
		env := envHelp(commandName(cmd))
		if env == "" {
			continue
		}
		long := cmd.Long
		if long == "" {
			long = cmd.Short
		}
		cmd.Long = long + "\n\n" + env
	}
}

// envHelp is the Environment section of command cmd's help, "" when it
// reads nothing. It shows defaults, never the values in force.
func envHelp(cmd string) string {
	var b strings.Builder
	for _, s := range settings {
		if !s.readBy(cmd) {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("Environment (all of tally's settings: the README's Configuration):\n")
		}
		var when string
		switch d := s.defaultFor(cmd); {
		case s.requiredBy(cmd):
			when = "required"
		case d != "":
			when = "default " + d
		default:
			when = "default: " + s.none
		}
		fmt.Fprintf(&b, "  %-28s %s\n", s.name, when)
		for _, line := range wrap(plain(s.doc), 72) {
			b.WriteString("      " + line + "\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// configTable is the README's configuration table.
func configTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | used by | |\n|---|---|---|---|\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.name, s.defaultDoc(), strings.Join(s.cmds, ", "), s.doc)
	}
	return b.String()
}

// defaultDoc is s's default for the table: "(required)", "`10m`",
// "`0` (`tally dev`: `1`)", or what happens without it.
func (s setting) defaultDoc() string {
	if len(s.required) > 0 {
		var optional []string
		for _, c := range s.cmds {
			if !s.requiredBy(c) {
				optional = append(optional, "`tally "+c+"`")
			}
		}
		if len(optional) == 0 {
			return "(required)"
		}
		return fmt.Sprintf("(required; %s: %s)", strings.Join(optional, ", "), s.none)
	}
	if s.def == "" {
		return s.none
	}
	d := "`" + s.def + "`"
	for _, c := range s.cmds {
		if v, ok := s.cmdDef[c]; ok {
			d += fmt.Sprintf(" (`tally %s`: `%s`)", c, v)
		}
	}
	return d
}

// plain is markdown text as a terminal shows it.
func plain(s string) string { return strings.ReplaceAll(s, "`", "") }

// wrap breaks s into lines of at most width characters, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
