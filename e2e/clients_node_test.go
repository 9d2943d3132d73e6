package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Node.js clients (pg, knex, Prisma with @prisma/adapter-pg, tsx to
// run Prisma's TypeScript) are the packages of testdata/clients/node, at
// the versions of its package-lock.json. The tests install them without
// the network, from npm's cache, once per version of the lock file, into
// the user's cache directory; without node, npm or those packages in npm's
// cache they skip.

// nodeModulesTimeout bounds the installation of the packages.
const nodeModulesTimeout = 5 * time.Minute

// nodeModules installs the packages once per test run and returns the
// node_modules folder.
var nodeModules = sync.OnceValues(installNodeModules)

func installNodeModules() (string, error) {
	src := filepath.Join(clientsDir, "node")
	pkg, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(slices.Clone(pkg), lock...))
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	parent := filepath.Join(cache, "pgmigrate-proxy-e2e")
	dir := filepath.Join(parent, "node-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, ".package-lock.json")); err == nil {
		return modules, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, "installing-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), nodeModulesTimeout)
	defer cancel()
	registry, err := exec.CommandContext(ctx, "npm", "config", "get", "registry").Output()
	if err != nil {
		return "", fmt.Errorf("npm config get registry: %w", err)
	}
	lock, err = lockWithTarballs(lock, strings.TrimSpace(string(registry)))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), pkg, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "package-lock.json"), lock, 0o644); err != nil {
		return "", err
	}
	// --ignore-scripts: Prisma's install scripts would download its
	// engines, which generating a client does not need.
	npm := exec.CommandContext(ctx, "npm", "ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	npm.Dir = tmp
	if out, err := npm.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci --offline: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run installed them meanwhile.
		if _, statErr := os.Stat(filepath.Join(modules, ".package-lock.json")); statErr != nil {
			return "", err
		}
	}
	return modules, nil
}

// lockWithTarballs adds to each package of a package-lock.json written
// without "resolved" fields (npm's omit-lockfile-registry-resolved) the
// address of its tarball on registry, which `npm ci --offline` needs to
// find it in npm's cache.
func lockWithTarballs(lock []byte, registry string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(lock, &doc); err != nil {
		return nil, fmt.Errorf("package-lock.json: %w", err)
	}
	packages, _ := doc["packages"].(map[string]any)
	for path, v := range packages {
		entry, _ := v.(map[string]any)
		_, hasResolved := entry["resolved"]
		version, _ := entry["version"].(string)
		i := strings.LastIndex(path, "node_modules/")
		if entry == nil || hasResolved || entry["link"] == true || version == "" || i < 0 {
			continue
		}
		name := path[i+len("node_modules/"):]
		base := name[strings.LastIndex(name, "/")+1:]
		entry["resolved"] = strings.TrimSuffix(registry, "/") + "/" + name + "/-/" + base + "-" + version + ".tgz"
	}
	return json.MarshalIndent(doc, "", "  ")
}

// nodeDir returns a copy of testdata/clients/node with the packages
// installed, or skips t.
func nodeDir(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	modules, err := nodeModules()
	if err != nil {
		t.Skipf("the packages of %s are not in npm's cache; with network access, fill it once: "+
			"cd e2e/%[1]s && npm ci --ignore-scripts && rm -r node_modules\n%[2]v", filepath.Join(clientsDir, "node"), err)
	}
	dir := t.TempDir()
	src := filepath.Join(clientsDir, "node")
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		switch {
		case d.IsDir() && (d.Name() == "node_modules" || d.Name() == "generated"):
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestClientsNodePg(t *testing.T) {
	dir := nodeDir(t)
	tn, p := clientTenants(t)
	got := runClient(t, dir, clientEnv(t, p, tn), "node", "with_pg.js")
	wantSteps(t, got, append(clientFlow(),
		step("org_option", map[string]any{"current_schema": clientOrg, "application_name": "recipes", "statement_timeout": "5s", "invoices": 2}),
		step("refused", map[string]any{"code": "42501", "severity": "FATAL"}))...)
}

func TestClientsKnex(t *testing.T) {
	dir := nodeDir(t)
	tn, p := clientTenants(t)
	got := runClient(t, dir, clientEnv(t, p, tn), "node", "with_knex.js")
	wantSteps(t, got, append(clientFlow(), errorStep("in_transaction", "25001"))...)
}

func TestClientsPrisma(t *testing.T) {
	dir := nodeDir(t)
	tn, p := clientTenants(t)
	env := clientEnv(t, p, tn)
	// prisma generate needs no schema engine, but Prisma's CLI looks for
	// one and downloads it when it is missing: any file will do.
	genEnv := append(slices.Clone(env), "CHECKPOINT_DISABLE=1", "PRISMA_HIDE_UPDATE_MESSAGE=1",
		"PRISMA_SCHEMA_ENGINE_BINARY="+filepath.Join(dir, "package.json"))
	ctx, cancel := context.WithTimeout(t.Context(), clientScriptTimeout)
	defer cancel()
	gen := exec.CommandContext(ctx, filepath.Join("node_modules", ".bin", "prisma"), "generate")
	gen.Dir, gen.Env = dir, genEnv
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("prisma generate: %v\n%s", err, out)
	}
	got := runClient(t, dir, env, filepath.Join("node_modules", ".bin", "tsx"), "with_prisma.ts")
	wantSteps(t, got, append(clientFlow(),
		step("without_schema", map[string]any{"code": "P2021", "table": "invoice",
			"message": "The table `public.invoice` does not exist in the current database."}))...)
}

// TestClientsNodePgQuickDisconnect opens connections and ends them at once:
// node-postgres must see no error, and the proxy must log none.
func TestClientsNodePgQuickDisconnect(t *testing.T) {
	dir := nodeDir(t)
	tn, p := clientTenants(t)
	env := clientEnv(t, p, tn)
	run := func(t *testing.T, env []string, script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), clientScriptTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", script)
		cmd.Dir, cmd.Env = dir, env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, out, stderr.String())
		}
		return string(out)
	}

	t.Run("awaited", func(t *testing.T) {
		from := len(p.logs.String())
		if got := run(t, env, "quick_disconnect.js"); got != "done\n" {
			t.Fatalf("quick_disconnect.js printed %q", got)
		}
		// 20 clients and a pool of 5, each connection logged as opened
		// and closed, without an error.
		lines := waitSessionsClosed(t, p, from, 25)
		for _, l := range lines {
			if !strings.Contains(l, `"level":"INFO"`) || strings.Contains(l, `"error"`) {
				t.Errorf("proxy logged %s", l)
			}
		}
	})

	// connect() not awaited: node-postgres writes a Terminate before the
	// startup packet; PostgreSQL and the proxy drop the connection alike.
	t.Run("not awaited", func(t *testing.T) {
		from, open := len(p.logs.String()), metrics(t, p)[metricConns]
		got := run(t, env, "connect_end.js")
		direct := run(t, append(slices.Clone(env), "DATABASE_URL="+cluster.DSN(scramUser, tn.db)), "connect_end.js")
		if got != "ended\n" || direct != got {
			t.Fatalf("connect_end.js printed %q through the proxy, %q directly", got, direct)
		}
		waitFor(t, "the proxy to close the connection", func() bool { return metrics(t, p)[metricConns] == open })
		for _, l := range strings.Split(strings.TrimSpace(p.logs.String()[from:]), "\n") {
			if l != "" && !strings.Contains(l, `"level":"INFO"`) {
				t.Errorf("proxy logged %s", l)
			}
		}
	})
}

// waitSessionsClosed waits until the proxy's log, from byte from on,
// records n sessions closed, and as many opened, and returns its lines
// from there.
func waitSessionsClosed(t testing.TB, p *proxyProc, from, n int) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := strings.Split(strings.TrimSpace(p.logs.String()[from:]), "\n")
		opened, closed := 0, 0
		for _, l := range lines {
			opened += strings.Count(l, `"message":"connection opened"`)
			closed += strings.Count(l, `"message":"connection closed"`)
		}
		if opened == n && closed == n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy logged %d sessions opened and %d closed, want %d:\n%s", opened, closed, n, strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
