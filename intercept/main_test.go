package intercept

import (
	"os"
	"testing"

	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(m, pgtest.Options{}, &cluster))
}
