package httpapi_test

import (
	"testing"

	"github.com/tallyhq/tally/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
