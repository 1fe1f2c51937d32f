// Command testbed-tool prepares what the test kube-apiserver needs.
//
//	testbed-tool certs DIR               CAs, serving cert, client certs, SA key pair
//	testbed-tool free-ports N            N distinct free TCP ports on 127.0.0.1
//	testbed-tool kubeconfig DIR SERVER   DIR/kubeconfig (admin) and DIR/user.kubeconfig
//	testbed-tool wait -url U -pid P [-timeout D] [-certs DIR]
//	                                     polls U until it answers 200 while process P lives;
//	                                     with -certs, over TLS as the admin of DIR's certs
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Certificates live only as long as one test-bed run; a week leaves room
// for a long-lived dev cluster while staying short like envtest's.
const validity = 7 * 24 * time.Hour

// Admin is in system:masters; the plain user has no RBAC bindings at all,
// so tests can check that authorization denies it.
const (
	adminUser = "sigsci-kit-admin"
	adminGrp  = "system:masters"
	plainUser = "sigsci-kit-test-user"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testbed-tool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: testbed-tool certs DIR | free-ports N | kubeconfig DIR SERVER | wait -url U -pid P")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "certs":
		if len(rest) != 1 {
			return errors.New("usage: testbed-tool certs DIR")
		}
		return writeCerts(rest[0])
	case "free-ports":
		if len(rest) != 1 {
			return errors.New("usage: testbed-tool free-ports N")
		}
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 1 || n > 16 {
			return fmt.Errorf("free-ports: N must be a number from 1 to 16, got %q", rest[0])
		}
		return printFreePorts(n)
	case "kubeconfig":
		if len(rest) != 2 {
			return errors.New("usage: testbed-tool kubeconfig DIR SERVER")
		}
		return writeKubeconfigs(rest[0], rest[1])
	case "wait":
		return waitReady(rest)
	default:
		return fmt.Errorf("unknown command %q (want certs, free-ports, kubeconfig or wait)", cmd)
	}
}

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func writeCerts(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	servingCA, err := newCA("sigsci-kit-test-serving-ca")
	if err != nil {
		return err
	}
	clientCA, err := newCA("sigsci-kit-test-client-ca")
	if err != nil {
		return err
	}
	serving, err := newLeaf(servingCA, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if err != nil {
		return err
	}
	admin, err := newLeaf(clientCA, pkix.Name{CommonName: adminUser, Organization: []string{adminGrp}},
		x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return err
	}
	plain, err := newLeaf(clientCA, pkix.Name{CommonName: plainUser}, x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(string) error
	}{
		{"serving-ca.crt", certWriter(servingCA)},
		{"client-ca.crt", certWriter(clientCA)},
		{"apiserver.crt", certWriter(serving)},
		{"apiserver.key", keyWriter(serving.key)},
		{"admin.crt", certWriter(admin)},
		{"admin.key", keyWriter(admin.key)},
		{"user.crt", certWriter(plain)},
		{"user.key", keyWriter(plain.key)},
		{"sa-signer.key", keyWriter(saKey)},
		{"sa-signer.pub", func(p string) error { return writePEM(p, "PUBLIC KEY", saPub) }},
	}
	for _, f := range files {
		if err := f.write(filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}

func newCA(name string) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	tmpl, err := baseTemplate(pkix.Name{CommonName: name})
	if err != nil {
		return keyPair{}, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	return sign(tmpl, tmpl, key, key)
}

func newLeaf(ca keyPair, subject pkix.Name, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	tmpl, err := baseTemplate(subject)
	if err != nil {
		return keyPair{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.DNSNames = dns
	tmpl.IPAddresses = ips
	return sign(tmpl, ca.cert, key, ca.key)
}

func baseTemplate(subject pkix.Name) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	// Backdated so a slightly skewed clock does not reject a fresh cert.
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
	}, nil
}

func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return keyPair{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{cert: cert, key: key}, nil
}

func certWriter(kp keyPair) func(string) error {
	return func(path string) error { return writePEM(path, "CERTIFICATE", kp.cert.Raw) }
}

func keyWriter(key *ecdsa.PrivateKey) func(string) error {
	return func(path string) error {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		return writePEM(path, "EC PRIVATE KEY", der)
	}
}

func writePEM(path, blockType string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600)
}

// printFreePorts holds every listener open until all N are chosen, so the
// ports are distinct; another process can still take one before the caller
// binds it, which start.sh handles by retrying.
func printFreePorts(n int) error {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
	}
	for _, l := range listeners {
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return fmt.Errorf("unexpected listener address %v", l.Addr())
		}
		fmt.Println(addr.Port)
	}
	return nil
}

func writeKubeconfigs(dir, server string) error {
	for _, kc := range []struct{ file, user, cert, key string }{
		{"kubeconfig", adminUser, "admin.crt", "admin.key"},
		{"user.kubeconfig", plainUser, "user.crt", "user.key"},
	} {
		if err := writeKubeconfig(dir, server, kc.file, kc.user, kc.cert, kc.key); err != nil {
			return fmt.Errorf("writing %s: %w", kc.file, err)
		}
	}
	return nil
}

// writeKubeconfig embeds the PEM data so the file works from any directory.
func writeKubeconfig(dir, server, file, user, certFile, keyFile string) error {
	var data [3]string
	for i, name := range []string{"serving-ca.crt", certFile, keyFile} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		data[i] = base64.StdEncoding.EncodeToString(raw)
	}
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: sigsci-kit-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: %s@sigsci-kit-test
  context:
    cluster: sigsci-kit-test
    user: %s
    namespace: default
current-context: %s@sigsci-kit-test
`, server, data[0], user, data[1], data[2], user, user, user)
	return os.WriteFile(filepath.Join(dir, file), []byte(body), 0o600)
}

func waitReady(args []string) error {
	flags := flag.NewFlagSet("wait", flag.ContinueOnError)
	url := flags.String("url", "", "URL that answers 200 once the server is ready")
	pid := flags.Int("pid", 0, "server process; waiting stops with an error when it exits")
	timeout := flags.Duration("timeout", 60*time.Second, "how long to wait")
	certs := flags.String("certs", "", "directory written by `certs`: use its serving CA and admin cert")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *url == "" || *pid <= 0 {
		return errors.New("wait: -url and -pid are required")
	}
	client, err := httpClient(*certs)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout)
	lastProblem := "no answer yet"
	for time.Now().Before(deadline) {
		if !processRunning(*pid) {
			return fmt.Errorf("process %d exited before %s was ready (%s)", *pid, *url, lastProblem)
		}
		ready, problem := probe(client, *url)
		if ready {
			return nil
		}
		lastProblem = problem
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s (%s)", *url, *timeout, lastProblem)
}

func httpClient(certDir string) (*http.Client, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	if certDir == "" {
		return client, nil
	}
	caPEM, err := os.ReadFile(filepath.Join(certDir, "serving-ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s/serving-ca.crt", certDir)
	}
	admin, err := tls.LoadX509KeyPair(filepath.Join(certDir, "admin.crt"), filepath.Join(certDir, "admin.key"))
	if err != nil {
		return nil, err
	}
	client.Transport = &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{admin},
		MinVersion:   tls.VersionTLS12,
	}}
	return client, nil
}

func probe(client *http.Client, url string) (bool, string) {
	resp, err := client.Get(url)
	if err != nil {
		return false, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return false, err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return true, ""
}

// processRunning is false once the process is gone or a zombie (exited but
// not yet reaped by the shell that started it).
func processRunning(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may hold spaces.
	end := strings.LastIndexByte(string(stat), ')')
	if end < 0 || end+2 >= len(stat) {
		return false
	}
	state := stat[end+2]
	return state != 'Z' && state != 'X'
}
