package source

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"

	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	storage "google.golang.org/api/storage/v1"
)

// storageAttempts bounds the metadata-then-download retries when the object
// is replaced between the two calls.
const storageAttempts = 3

// StorageLoader reads the policy from a Cloud Storage object. Its version is
// the object's generation. It reads the metadata first (objects.get) and then
// downloads that very generation (alt=media&generation=G), so the content
// always belongs to the version it is reported under, even when the object
// is replaced between the two calls.
type StorageLoader struct {
	bucket, object string
	svc            *storage.Service
}

// NewStorageLoader returns a loader for gs://bucket/object. opts reach the
// REST client, e.g. option.WithEndpoint and option.WithoutAuthentication to
// aim it at a fake. ctx may be kept by the client for credentials, so it should
// outlive the loader.
func NewStorageLoader(ctx context.Context, bucket, object string, opts ...option.ClientOption) (*StorageLoader, error) {
	var errs []error
	if bucket == "" {
		errs = append(errs, errors.New("bucket name is empty"))
	}
	if object == "" {
		errs = append(errs, errors.New("object name is empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid Cloud Storage location gs://%s/%s: %w", bucket, object, err)
	}
	svc, err := storage.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to create Cloud Storage client: %w", err)
	}
	return &StorageLoader{bucket: bucket, object: object, svc: svc}, nil
}

// Load reads the live generation's metadata, then downloads that generation.
// If the generation disappears in between (overwritten in a bucket without
// versioning: 404), it starts over with the new one.
func (l *StorageLoader) Load(ctx context.Context) ([]byte, string, error) {
	var err error
	for range storageAttempts {
		var data []byte
		var version string
		var gone bool
		data, version, gone, err = l.load(ctx)
		if !gone || ctx.Err() != nil {
			return data, version, err
		}
	}
	return nil, "", err
}

// load makes one attempt; gone reports that the generation named by the
// metadata could not be downloaded any more, so a new attempt may succeed.
func (l *StorageLoader) load(ctx context.Context) (data []byte, version string, gone bool, err error) {
	obj, err := l.svc.Objects.Get(l.bucket, l.object).Context(ctx).Do()
	if err != nil {
		return nil, "", false, fmt.Errorf("failed to get metadata of %s: %w", l, err)
	}
	if obj.Generation == 0 {
		return nil, "", false, fmt.Errorf("metadata of %s has no generation", l)
	}
	version = strconv.FormatInt(obj.Generation, 10)
	if obj.Size > maxDocumentSize {
		return nil, "", false, &VersionError{Version: version,
			Err: fmt.Errorf("object is %d bytes, more than %d", obj.Size, maxDocumentSize)}
	}
	resp, err := l.svc.Objects.Get(l.bucket, l.object).Generation(obj.Generation).Context(ctx).Download()
	if err != nil {
		return nil, "", isGone(err), fmt.Errorf("failed to download %s generation %s: %w", l, version, err)
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("failed to read %s generation %s: %w", l, version, err)
	}
	if len(data) > maxDocumentSize {
		return nil, "", false, &VersionError{Version: version,
			Err: fmt.Errorf("object is larger than %d bytes", maxDocumentSize)}
	}
	if g := resp.Header.Get("X-Goog-Generation"); g != "" && g != version {
		return nil, "", false, fmt.Errorf("download of %s generation %s returned generation %s", l, version, g)
	}
	if obj.Crc32c != "" {
		if err := checkCRC32C(data, obj.Crc32c); err != nil {
			return nil, "", false, &VersionError{Version: version, Err: err}
		}
	}
	return data, version, false, nil
}

// checkCRC32C compares data with the object's crc32c field: base64 of the
// big-endian CRC32C.
func checkCRC32C(data []byte, field string) error {
	raw, err := base64.StdEncoding.DecodeString(field)
	if err != nil || len(raw) != 4 {
		return fmt.Errorf("object metadata has a malformed crc32c %q", field)
	}
	want := binary.BigEndian.Uint32(raw)
	if got := crc32.Checksum(data, castagnoli); got != want {
		return fmt.Errorf("content CRC32C mismatch: metadata says %08x, content has %08x", want, got)
	}
	return nil
}

// isGone reports a download error meaning "that generation is no longer
// there": 404, for a generation overwritten in a bucket without versioning
// (or an object deleted meanwhile, which the next metadata call reports).
func isGone(err error) bool {
	ge, ok := errors.AsType[*googleapi.Error](err)
	return ok && ge.Code == http.StatusNotFound
}

// String names the location in logs.
func (l *StorageLoader) String() string { return "gs://" + l.bucket + "/" + l.object }
