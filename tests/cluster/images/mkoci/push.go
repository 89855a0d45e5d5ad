package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func pushCommand(args []string) error {
	flags := flag.NewFlagSet("push", flag.ExitOnError)
	registry := flags.String("registry", "", "registry HOST:PORT (plain HTTP)")
	flags.Parse(args)
	if *registry == "" || flags.NArg() == 0 {
		return fmt.Errorf("push needs -registry and at least one image tar")
	}
	for _, path := range flags.Args() {
		if err := push("http://"+*registry, path); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// push uploads the image of an OCI layout tar (as pack writes it) to the registry at BASE:
// its blobs (those the registry lacks), then its manifest under the repository and tag of its name.
func push(base, path string) error {
	files, err := readTar(path)
	if err != nil {
		return err
	}
	var top index
	if err := json.Unmarshal(files["index.json"], &top); err != nil || len(top.Manifests) != 1 {
		return fmt.Errorf("index.json must hold exactly one manifest (%v)", err)
	}
	name := top.Manifests[0].Annotations[nameAnnotation]
	repo, tag, ok := strings.Cut(name[strings.Index(name, "/")+1:], ":")
	if !ok {
		return fmt.Errorf("image name %q has no tag", name)
	}
	image := files[blobName(top.Manifests[0].Digest)]
	var parsed manifest
	if err := json.Unmarshal(image, &parsed); err != nil {
		return err
	}
	for _, blob := range append([]descriptor{parsed.Config}, parsed.Layers...) {
		if err := pushBlob(base, repo, blob.Digest, files[blobName(blob.Digest)]); err != nil {
			return err
		}
	}
	return send(http.MethodPut, fmt.Sprintf("%s/v2/%s/manifests/%s", base, repo, tag), manifestType, image, http.StatusCreated)
}

func readTar(path string) (map[string][]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	files := map[string][]byte{}
	reader := tar.NewReader(file)
	for {
		header, err := reader.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if files[header.Name], err = io.ReadAll(reader); err != nil {
			return nil, err
		}
	}
}

func blobName(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// pushBlob is a monolithic upload (POST for a session, PUT with the digest), skipped when the blob is there.
func pushBlob(base, repo, digest string, data []byte) error {
	head, err := http.Head(fmt.Sprintf("%s/v2/%s/blobs/%s", base, repo, digest))
	if err != nil {
		return err
	}
	head.Body.Close()
	if head.StatusCode == http.StatusOK {
		return nil
	}
	resp, err := http.Post(fmt.Sprintf("%s/v2/%s/blobs/uploads/", base, repo), "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("starting the upload of %s: %s", digest, resp.Status)
	}
	location, err := resp.Location()
	if err != nil {
		return err
	}
	query := location.Query()
	query.Set("digest", digest)
	location.RawQuery = query.Encode()
	return send(http.MethodPut, location.String(), "application/octet-stream", data, http.StatusCreated)
}

func send(method, target, contentType string, body []byte, want int) error {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		detail, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s %s", method, target, resp.Status, detail)
	}
	return nil
}
