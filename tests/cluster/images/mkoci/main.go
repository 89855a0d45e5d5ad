// Command mkoci packs static binaries into a single-layer OCI image layout
// (a tar file, as `ctr images import` reads it) and pushes such a tarball to
// an OCI registry over plain HTTP. Standard library only: the real node's
// images are built from this repository's sources, never downloaded.
//
//	mkoci pack -name REGISTRY/REPO:TAG -o OUT.tar [-entrypoint /x] [-cmd a,b] SRC:DEST...
//	mkoci push -registry HOST:PORT IMAGE.tar...
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
)

const (
	manifestType = "application/vnd.oci.image.manifest.v1+json"
	configType   = "application/vnd.oci.image.config.v1+json"
	layerType    = "application/vnd.oci.image.layer.v1.tar"
	// nameAnnotation holds the full image name (registry, repository and tag), as containerd writes it.
	nameAnnotation = "io.containerd.image.name"
	tagAnnotation  = "org.opencontainers.image.ref.name"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	Manifests     []descriptor `json:"manifests"`
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: mkoci pack|push ...")
	}
	var err error
	switch os.Args[1] {
	case "pack":
		err = packCommand(os.Args[2:])
	case "push":
		err = pushCommand(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (pack or push)", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "mkoci:", msg)
	os.Exit(1)
}

func packCommand(args []string) error {
	flags := flag.NewFlagSet("pack", flag.ExitOnError)
	name := flags.String("name", "", "image name REGISTRY/REPO:TAG")
	out := flags.String("o", "", "output tar file")
	entrypoint := flags.String("entrypoint", "", "entrypoint (one path)")
	cmd := flags.String("cmd", "", "default arguments, comma-separated")
	flags.Parse(args)
	if *name == "" || *out == "" || flags.NArg() == 0 {
		return fmt.Errorf("pack needs -name, -o and at least one SRC:DEST")
	}
	layout, err := pack(*name, *entrypoint, split(*cmd), flags.Args())
	if err != nil {
		return err
	}
	return os.WriteFile(*out, layout, 0o644)
}

func split(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

// pack returns the tar of an OCI image layout holding one image made of FILES (SRC:DEST pairs).
func pack(name, entrypoint string, cmd, files []string) ([]byte, error) {
	tag := name[strings.LastIndex(name, ":")+1:]
	layer, err := layerTar(files)
	if err != nil {
		return nil, err
	}
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{entrypoint}, "Cmd": cmd},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
	})
	image, _ := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     manifestType,
		Config:        descriptor{MediaType: configType, Digest: digest(config), Size: len(config)},
		Layers:        []descriptor{{MediaType: layerType, Digest: digest(layer), Size: len(layer)}},
	})
	top, _ := json.Marshal(index{SchemaVersion: 2, Manifests: []descriptor{{
		MediaType: manifestType, Digest: digest(image), Size: len(image),
		Platform:    &platform{Architecture: "amd64", OS: "linux"},
		Annotations: map[string]string{nameAnnotation: name, tagAnnotation: tag},
	}}})
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	entries := []struct {
		path string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", top},
		{blobPath(config), config},
		{blobPath(layer), layer},
		{blobPath(image), image},
	}
	for _, entry := range entries {
		if err := addFile(w, entry.path, entry.data, 0o644); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), w.Close()
}

// layerTar is the image's one layer: the directories a container runtime expects, then the files.
// Every header has a zero mtime, so the same binaries give the same digests.
func layerTar(files []string) ([]byte, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, dir := range []string{"dev", "etc", "proc", "sys", "tmp"} {
		mode := int64(0o755)
		if dir == "tmp" {
			mode = 0o1777
		}
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: mode}); err != nil {
			return nil, err
		}
	}
	for _, pair := range files {
		src, dest, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, fmt.Errorf("%q is not SRC:DEST", pair)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if err := addFile(w, strings.TrimPrefix(dest, "/"), data, 0o755); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), w.Close()
}

func addFile(w *tar.Writer, name string, data []byte, mode int64) error {
	if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

func digest(data []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(data))
}

func blobPath(data []byte) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest(data), "sha256:")
}
