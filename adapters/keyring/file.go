package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// fileFormat names the layout of the keyring file so that a future layout is never misread.
const fileFormat = "betterkey-keyring/v1"

const (
	keySize     = 32      // AES-256
	maxFileSize = 1 << 20 // ~20,000 versions; anything larger is not a keyring
	filePerm    = 0o600
)

// fileData is the JSON layout of the keyring file. Keys are listed by version, 1 to n.
type fileData struct {
	Format               string    `json:"format"`
	MinDecryptionVersion int       `json:"min_decryption_version"`
	Keys                 []fileKey `json:"keys"`
}

// fileKey is one key version; Key is the base64 of 32 random bytes.
type fileKey struct {
	Version   int       `json:"version"`
	Key       string    `json:"key"`
	CreatedAt time.Time `json:"created_at"`
}

// state is the loaded keyring: raw keys (to rewrite the file) and one AEAD per version.
type state struct {
	file          fileData
	aeads         []cipher.AEAD
	minDecryption int
}

// latest is the version new seals use.
func (s *state) latest() int { return len(s.aeads) }

// Open loads the keyring file at path. When the file does not exist and create is true, it is
// created (mode 0600, parent directories 0700) with one fresh key; only development may ask for
// that, which the config layer decides. A file readable or writable by group or others, not a
// regular file, or not a valid keyring is refused.
func Open(path string, create bool) (*Keyring, error) {
	data, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		return createFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	st, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", path, err)
	}
	return &Keyring{path: path, state: st}, nil
}

// readKeyFile reads the file after checking, on the open descriptor, that it is private.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %#o: group or others may access it, chmod 600 it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

// parse validates the whole file; error messages never quote key material.
func parse(data []byte) (state, error) {
	var fd fileData
	if err := json.Unmarshal(data, &fd); err != nil {
		return state{}, errors.New("file is not valid JSON")
	}
	if fd.Format != fileFormat {
		return state{}, fmt.Errorf("format is not %q", fileFormat)
	}
	if len(fd.Keys) == 0 {
		return state{}, errors.New("file holds no key")
	}
	st := state{file: fd, minDecryption: fd.MinDecryptionVersion}
	for i, k := range fd.Keys {
		if k.Version != i+1 {
			return state{}, fmt.Errorf("key %d has version %d, versions must count up from 1 without gaps", i+1, k.Version)
		}
		raw, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil || len(raw) != keySize {
			return state{}, fmt.Errorf("key version %d is not 32 bytes of base64", k.Version)
		}
		aead, err := newAEAD(raw)
		if err != nil {
			return state{}, fmt.Errorf("key version %d: %w", k.Version, err)
		}
		st.aeads = append(st.aeads, aead)
	}
	if st.minDecryption < 1 || st.minDecryption > len(st.aeads) {
		return state{}, fmt.Errorf("min_decryption_version %d is outside 1..%d", st.minDecryption, len(st.aeads))
	}
	return st, nil
}

// newAEAD returns AES-256-GCM with the standard 12-byte nonce and 16-byte tag.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// newKey draws a fresh 256-bit key version; it returns the file entry and the raw key.
func newKey(version int, now time.Time) (fileKey, []byte) {
	raw := make([]byte, keySize)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails since Go 1.24
	return fileKey{Version: version, Key: base64.StdEncoding.EncodeToString(raw), CreatedAt: now.UTC()}, raw
}

// createFile writes a new one-key keyring. O_EXCL makes a concurrent creator lose cleanly: it
// then loads the winner's file.
func createFile(path string) (*Keyring, error) {
	key, _ := newKey(1, time.Now())
	fd := fileData{Format: fileFormat, MinDecryptionVersion: 1, Keys: []fileKey{key}}
	data, err := json.MarshalIndent(fd, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("create keyring: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create keyring: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if errors.Is(err, fs.ErrExist) {
		return Open(path, false)
	}
	if err != nil {
		return nil, fmt.Errorf("create keyring: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create keyring: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create keyring: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("create keyring: %w", err)
	}
	return Open(path, false)
}

// writeFile replaces the keyring file atomically: a private temp file in the same directory,
// fsynced, renamed over the old one, then the directory fsynced. A crash leaves the old or the new
// file, never a torn one.
func writeFile(path string, fd fileData) (err error) {
	data, err := json.MarshalIndent(fd, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".keyring-*.tmp") // created with mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Chmod(filePerm); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}
