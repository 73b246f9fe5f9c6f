package durable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// A Journal is a durable map from string keys to byte values, kept in one
// append-only file. Each Apply appends one record holding a batch of puts
// and deletes and syncs the file once, so a change costs one small write
// and one fsync whatever the size of the map (concurrent changes share
// fsyncs: see Apply). Open replays the file; a
// record torn by a crash (short, or failing its CRC) can only be the last
// one, because every earlier record was synced before the next was
// written, and it is cut off: the map is then as it was after the last
// Apply that returned, or after the torn one, never in between.
//
// A journal is chosen over a SQLite table because the three local services
// already hold their whole state in memory and only need it back after a
// restart: a journal writes exactly the change and nothing else, one fsync
// per change, with no page or index maintenance, and its failure modes are
// few enough to test directly (TestJournalTornTail).
//
// Overwritten and deleted values stay in the file until a compaction
// rewrites it with the live entries only (temporary file, fsync, rename,
// directory fsync: the old or the new file, never a mix). Apply compacts
// when the file is over compactRatio times the live size and over
// minCompactBytes. A compaction writes at most 1/compactRatio of the file
// it replaces and every byte it drops was appended once, so compactions
// write at most 1/(compactRatio-1) of the bytes Apply appends: amortised
// O(1) per change. The Apply that triggers one waits for it.
//
// The file format is a header (journalMagic) and records of
// [payload length uint32 LE][CRC-32C of payload uint32 LE][payload]; a
// payload is a sequence of ops, put: 'P' uvarint(len key) key
// uvarint(len value) value; delete: 'D' uvarint(len key) key.
type Journal struct {
	path string

	mu   sync.Mutex
	cond *sync.Cond // on mu: a flush ended
	f    *os.File
	err  error // sticky: set when a failed write may have left a torn record
	// Group commit: records queued while a flush is in progress, and the
	// tickets of the last record queued and the last one synced.
	pending         []byte
	pendingOps      [][]journalOp
	queued, flushed uint64
	flushing        bool
	// syncSoon is armed while a deferred record waits for a sync.
	syncSoon  *time.Timer
	live      map[string][]byte
	liveBytes int64 // what the live entries take in a compacted file
	size      int64 // bytes in the file
	stats     JournalStats

	// Compaction thresholds; fields so that tests can lower them.
	compactRatio    int64
	minCompactBytes int64
	retryCompactAt  int64 // after a failed compaction, the size to try again at
}

// JournalStats counts a Journal's work since Open.
type JournalStats struct {
	// Appends is the number of records appended by Apply, one per
	// successful call.
	Appends int64
	// Syncs is the number of fsyncs they took: one per Apply, fewer when
	// concurrent Applies shared one.
	Syncs int64
	// AppendedBytes is the bytes those records took.
	AppendedBytes int64
	// Compactions is the number of times the file was rewritten.
	Compactions int64
	// TruncatedBytes is the torn tail Open cut off.
	TruncatedBytes int64
	// Size is the current file size; LiveBytes what a compaction would
	// leave of it.
	Size, LiveBytes int64
	// CompactionError is why the last compaction failed, nil if it did
	// not. A failed compaction loses nothing: the file is still whole.
	CompactionError error
	// Unsynced is the number of records queued (deferred ones included)
	// that are not on disk yet.
	Unsynced int64
}

const (
	journalMagic = "JITJRNL1"
	frameHeader  = 8
	// maxRecord bounds a record's payload, so that a torn length field
	// cannot make Open allocate gigabytes.
	maxRecord = 256 << 20
	// snapshotChunk is the payload size compaction aims for per record.
	snapshotChunk = 1 << 20

	opPut    = 'P'
	opDelete = 'D'

	defaultCompactRatio    = 4
	defaultMinCompactBytes = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrJournalClosed is returned by a closed Journal.
var ErrJournalClosed = errors.New("journal is closed")

// Batch is a set of puts and deletes applied in one record: all or none of
// them survive a crash.
type Batch struct {
	ops []journalOp
}

type journalOp struct {
	del   bool
	key   string
	value []byte
}

// Put sets key to value. The journal keeps value: do not modify it after.
func (b *Batch) Put(key string, value []byte) {
	b.ops = append(b.ops, journalOp{key: key, value: value})
}

// Delete removes key; deleting a missing key is a no-op.
func (b *Batch) Delete(key string) {
	b.ops = append(b.ops, journalOp{del: true, key: key})
}

// Len is the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// OpenJournal opens or creates the journal at path and replays it, cutting
// off a torn last record.
func OpenJournal(path string) (*Journal, error) {
	j := &Journal{path: path, live: map[string][]byte{}, compactRatio: defaultCompactRatio, minCompactBytes: defaultMinCompactBytes}
	j.cond = sync.NewCond(&j.mu)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", dir, err)
	}
	// A compaction killed before its rename leaves its temporary file.
	if stale, err := filepath.Glob(filepath.Join(dir, "."+filepath.Base(path)+".tmp-*")); err == nil {
		for _, s := range stale {
			_ = os.Remove(s)
		}
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// The header is created atomically, so the file exists only once
		// it is whole.
		if err := WriteFile(path, []byte(journalMagic)); err != nil {
			return nil, fmt.Errorf("failed to create journal: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open journal %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to read journal %s: %w", path, err)
	}
	if len(data) < len(journalMagic) && strings.HasPrefix(journalMagic, string(data)) {
		// Torn while an earlier version created it without a rename:
		// nothing was ever appended, so it is a new journal.
		if _, err := f.WriteAt([]byte(journalMagic), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to write the header of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to sync %s: %w", path, err)
		}
		data = []byte(journalMagic)
	}
	good, err := replay(data, j.apply)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to replay journal %s: %w", path, err)
	}
	if good < int64(len(data)) {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to cut the torn tail of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to sync %s: %w", path, err)
		}
		j.stats.TruncatedBytes = int64(len(data)) - good
	}
	if _, err := f.Seek(good, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to seek in %s: %w", path, err)
	}
	j.f, j.size = f, good
	return j, nil
}

// ReadJournal returns the entries of the journal at path without changing
// the file, for inspecting a journal another process may be appending to:
// a record being written is ignored as a torn one would be. A missing file
// is an empty map.
func ReadJournal(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read journal %s: %w", path, err)
	}
	live := map[string][]byte{}
	if len(data) < len(journalMagic) {
		return live, nil
	}
	_, err = replay(data, func(op journalOp) {
		if op.del {
			delete(live, op.key)
		} else {
			live[op.key] = op.value
		}
	})
	if err != nil {
		return nil, fmt.Errorf("failed to replay journal %s: %w", path, err)
	}
	return live, nil
}

// replay calls apply for every op of every whole record of data and
// returns the offset after the last whole record. Only a bad header is an
// error: anything wrong after it is a torn tail.
func replay(data []byte, apply func(journalOp)) (int64, error) {
	if !bytes.HasPrefix(data, []byte(journalMagic)) {
		return 0, errors.New("not a journal: bad header")
	}
	off := len(journalMagic)
	for len(data)-off >= frameHeader {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		// A zero length is never written: it is a hole of zeros that a
		// filesystem may show after a crash that extended the file.
		if n == 0 || n > maxRecord || len(data)-off-frameHeader < n {
			break
		}
		payload := data[off+frameHeader : off+frameHeader+n]
		if crc32.Checksum(payload, crcTable) != sum {
			break
		}
		ops, ok := decodeOps(payload)
		if !ok {
			break
		}
		for _, op := range ops {
			apply(op)
		}
		off += frameHeader + n
	}
	return int64(off), nil
}

func decodeOps(p []byte) ([]journalOp, bool) {
	var ops []journalOp
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > uint64(len(p)-w) { //nolint:gosec // G115: len-w is not negative when w > 0
			return nil, false
		}
		end := w + int(n) //nolint:gosec // G115: n is at most len(p) here
		b := p[w:end]
		p = p[end:]
		return b, true
	}
	for len(p) > 0 {
		kind := p[0]
		p = p[1:]
		key, ok := field()
		if !ok {
			return nil, false
		}
		switch kind {
		case opPut:
			v, ok := field()
			if !ok {
				return nil, false
			}
			ops = append(ops, journalOp{key: string(key), value: bytes.Clone(v)})
		case opDelete:
			ops = append(ops, journalOp{del: true, key: string(key)})
		default:
			return nil, false
		}
	}
	return ops, true
}

func appendOp(dst []byte, op journalOp) []byte {
	if op.del {
		dst = append(dst, opDelete)
		dst = binary.AppendUvarint(dst, uint64(len(op.key)))
		return append(dst, op.key...)
	}
	dst = append(dst, opPut)
	dst = binary.AppendUvarint(dst, uint64(len(op.key)))
	dst = append(dst, op.key...)
	dst = binary.AppendUvarint(dst, uint64(len(op.value)))
	return append(dst, op.value...)
}

// putSize is what a live entry takes in a compacted file.
func putSize(key string, value []byte) int64 {
	return int64(1 + uvarintLen(len(key)) + len(key) + uvarintLen(len(value)) + len(value))
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n)) //nolint:gosec // G115: n is a length, never negative
}

func frame(payload []byte) []byte {
	out := make([]byte, frameHeader, frameHeader+len(payload))
	binary.LittleEndian.PutUint32(out, uint32(len(payload))) //nolint:gosec // G115: Apply caps payloads at maxRecord, and snapshot records at about snapshotChunk
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(payload, crcTable))
	return append(out, payload...)
}

// apply changes the in-memory map; j.mu is held or j is not shared yet.
func (j *Journal) apply(op journalOp) {
	if old, ok := j.live[op.key]; ok {
		j.liveBytes -= putSize(op.key, old)
		delete(j.live, op.key)
	}
	if !op.del {
		j.live[op.key] = op.value
		j.liveBytes += putSize(op.key, op.value)
	}
}

// Put is Apply of a batch of one put.
func (j *Journal) Put(key string, value []byte) error {
	var b Batch
	b.Put(key, value)
	return j.Apply(&b)
}

// Delete is Apply of a batch of one delete.
func (j *Journal) Delete(key string) error {
	var b Batch
	b.Delete(key)
	return j.Apply(&b)
}

// Apply appends the batch as one record and syncs it: when it returns nil
// the whole batch survives a crash. An empty batch writes nothing. After a
// failed write the journal refuses further changes, because the file may
// end in a torn record that later ones must not follow; reopen it.
//
// Concurrent Applies share syncs (group commit): while one caller writes
// and syncs, the others queue their records, and the next of them writes
// and syncs all that queued in one go. Records are written in the order
// their Applies took the lock, so a caller that orders its changes under
// its own lock finds them in that order.
func (j *Journal) Apply(b *Batch) error {
	if b == nil || len(b.ops) == 0 {
		return nil
	}
	rec, err := j.record(b)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.queueLocked(rec, b); err != nil {
		return err
	}
	return j.awaitLocked(j.queued)
}

// awaitLocked returns once every record up to ticket is synced, writing
// them itself if no flush is in progress, or with the error of the write
// that carried them (or ErrJournalClosed, if Close came first).
func (j *Journal) awaitLocked(ticket uint64) error {
	for j.flushed < ticket {
		if err := j.usableLocked(); err != nil {
			return err
		}
		if j.flushing {
			j.cond.Wait()
			continue
		}
		j.flushLocked()
	}
	return nil
}

// record frames b's operations as one record.
func (j *Journal) record(b *Batch) ([]byte, error) {
	var payload []byte
	for _, op := range b.ops {
		payload = appendOp(payload, op)
	}
	if len(payload) > maxRecord {
		return nil, fmt.Errorf("failed to append to %s: a batch of %d bytes is over the %d-byte limit", j.path, len(payload), maxRecord)
	}
	return frame(payload), nil
}

// queueLocked queues a framed record of b for the next flush.
func (j *Journal) queueLocked(rec []byte, b *Batch) error {
	if err := j.usableLocked(); err != nil {
		return err
	}
	j.pending = append(j.pending, rec...)
	j.pendingOps = append(j.pendingOps, b.ops)
	j.queued++
	return nil
}

// DeferWindow bounds how long a Defer'd record waits for a sync when no
// Apply or Sync comes first.
const DeferWindow = 50 * time.Millisecond

// Defer queues the batch to be written, in order, with the next Apply or
// Sync — or within DeferWindow — and returns without waiting for it to
// reach the disk: a crash before then loses it (and every later
// record), never an earlier one. It is for records whose loss only makes
// a replay redo work that nothing outside has seen yet; the caller must
// Sync before anything outside can see their effect. A deferred record is
// not in the map (Get, Range) until it is written.
func (j *Journal) Defer(b *Batch) error {
	if b == nil || len(b.ops) == 0 {
		return nil
	}
	rec, err := j.record(b)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.queueLocked(rec, b); err != nil {
		return err
	}
	if j.syncSoon == nil {
		j.syncSoon = time.AfterFunc(DeferWindow, func() { _ = j.Sync() })
	}
	return nil
}

// Sync writes and syncs every record queued so far, deferred ones
// included; it returns at once when there are none.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.awaitLocked(j.queued)
}

// usableLocked says why the journal cannot take a change, if it cannot.
func (j *Journal) usableLocked() error {
	switch {
	case j.f == nil:
		return ErrJournalClosed
	case j.err != nil:
		return fmt.Errorf("failed to append to %s: %w", j.path, j.err)
	}
	return nil
}

// flushLocked writes and syncs every queued record, then applies them to
// the map and compacts if due. j.mu is held on entry and exit but not
// during the write and sync, so that other callers can queue meanwhile.
func (j *Journal) flushLocked() {
	j.flushing = true
	if j.syncSoon != nil {
		j.syncSoon.Stop()
		j.syncSoon = nil
	}
	buf, groups, upTo, f := j.pending, j.pendingOps, j.queued, j.f
	j.pending, j.pendingOps = nil, nil
	j.mu.Unlock()
	_, err := f.Write(buf)
	if err == nil {
		// On failure, whether the records reached the disk is unknown
		// (fsync does not say, and a retry may report success for lost
		// data): the journal fails.
		err = f.Sync()
	}
	j.mu.Lock()
	j.flushing = false
	defer j.cond.Broadcast()
	if err != nil {
		j.fail(err)
		return
	}
	j.size += int64(len(buf))
	j.stats.Syncs++
	j.stats.Appends += int64(len(groups))
	j.stats.AppendedBytes += int64(len(buf))
	for _, ops := range groups {
		for _, op := range ops {
			j.apply(op)
		}
	}
	j.flushed = upTo
	if j.size > j.minCompactBytes && j.size > j.retryCompactAt && j.size > j.compactRatio*(j.liveBytes+int64(len(journalMagic))) {
		if err := j.compactLocked(); err != nil {
			// The changes are durable and the old file stays valid, so
			// their Applies succeed; the next try waits until the file
			// has doubled, lest a full disk make every change a compaction.
			j.stats.CompactionError = err
			j.retryCompactAt = 2 * j.size
		} else {
			j.stats.CompactionError, j.retryCompactAt = nil, 0
		}
	}
}

// fail makes the journal refuse changes; it tries to cut what may be a
// torn record first, so a reopen finds a clean end.
func (j *Journal) fail(err error) {
	j.err = err
	_ = j.f.Truncate(j.size)
}

// Compact rewrites the file with the live entries only.
func (j *Journal) Compact() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.flushing {
		j.cond.Wait()
	}
	if err := j.usableLocked(); err != nil {
		return err
	}
	return j.compactLocked()
}

func (j *Journal) compactLocked() error {
	dir := filepath.Dir(j.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(j.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to create temporary file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	buf := []byte(journalMagic)
	var payload []byte
	flush := func() {
		if len(payload) > 0 {
			buf = append(buf, frame(payload)...)
			payload = payload[:0]
		}
	}
	for k, v := range j.live {
		payload = appendOp(payload, journalOp{key: k, value: v})
		if len(payload) >= snapshotChunk {
			flush()
		}
	}
	flush()
	if _, err := tmp.Write(buf); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to sync %s: %w", tmp.Name(), err)
	}
	// Locked before it becomes the journal, so no other opener can take it
	// between the rename and the lock.
	if err := lockFile(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to replace %s: %w", j.path, err)
	}
	syncDir(dir)
	// The temporary file is now the journal, and its descriptor is at its
	// end: appends continue there.
	j.f.Close()
	j.f = tmp
	j.size = int64(len(buf))
	j.stats.Compactions++
	return nil
}

// Get returns the value of key. The value is shared: do not modify it.
func (j *Journal) Get(key string) ([]byte, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.live[key]
	return v, ok
}

// Has reports whether key is in the map.
func (j *Journal) Has(key string) bool {
	_, ok := j.Get(key)
	return ok
}

// Range calls fn for every entry whose key starts with prefix, in no
// particular order, and stops at the first error, which it returns. Values
// are shared: do not modify them. fn must not call the journal.
func (j *Journal) Range(prefix string, fn func(key string, value []byte) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for k, v := range j.live {
		if strings.HasPrefix(k, prefix) {
			if err := fn(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Len is the number of live entries.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.live)
}

// Stats reports the journal's work since Open.
func (j *Journal) Stats() JournalStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Size, s.LiveBytes = j.size, j.liveBytes+int64(len(journalMagic))
	s.Unsynced = int64(j.queued - j.flushed) //nolint:gosec // G115: flushed never passes queued
	return s
}

// Close closes the file. Every Apply that returned nil is already durable.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.flushing {
		j.cond.Wait()
	}
	// Applies still queued find the journal closed.
	defer j.cond.Broadcast()
	if j.f == nil {
		return nil
	}
	if j.flushed < j.queued && j.err == nil {
		j.flushLocked() // deferred records (and Applies queued with them) are written
	}
	if j.syncSoon != nil {
		j.syncSoon.Stop()
		j.syncSoon = nil
	}
	err := j.f.Close()
	j.f = nil
	if err != nil {
		return fmt.Errorf("failed to close %s: %w", j.path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable; best effort, since not every
// filesystem can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
