package compose

import (
	"fmt"
	"os"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/mount"

	"github.com/modelship/modelship/internal/deploy/docker"
)

// networks are the service's networks by their engine names: release
// containers join them without aliases, the gateway with the service's
// name and its aliases there. A service without networks is on the
// project's default network.
func networks(project *types.Project, svc types.ServiceConfig) (releases, gateway []docker.NetworkAttach) {
	keys := make([]string, 0, len(svc.Networks))
	for k := range svc.Networks {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		keys = []string{"default"}
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := k
		if n, ok := project.Networks[k]; ok && n.Name != "" {
			name = n.Name
		} else if k == "default" {
			name = project.Name + "_default"
		}
		aliases := []string{svc.Name}
		if c := svc.Networks[k]; c != nil {
			aliases = append(aliases, c.Aliases...)
		}
		releases = append(releases, docker.NetworkAttach{Name: name})
		gateway = append(gateway, docker.NetworkAttach{Name: name, Aliases: aliases})
	}
	return releases, gateway
}

// mounts are the service's volumes: named volumes by their engine names,
// binds by their absolute paths, tmpfs.
func mounts(project *types.Project, svc types.ServiceConfig) ([]mount.Mount, error) {
	var out []mount.Mount
	for i, v := range svc.Volumes {
		m := mount.Mount{Type: mount.Type(v.Type), Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
			if vol, ok := project.Volumes[v.Source]; ok && vol.Name != "" {
				m.Source = vol.Name
			}
			if v.Volume != nil {
				m.VolumeOptions = &mount.VolumeOptions{NoCopy: v.Volume.NoCopy}
			}
		case types.VolumeTypeBind:
			if v.Bind != nil && v.Bind.CreateHostPath {
				m.BindOptions = &mount.BindOptions{CreateMountpoint: true}
			}
		case types.VolumeTypeTmpfs:
			if v.Tmpfs != nil {
				m.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: int64(v.Tmpfs.Size), Mode: os.FileMode(v.Tmpfs.Mode)}
			}
		default:
			return nil, fmt.Errorf("volumes[%d]: type %q is not supported (expected volume, bind or tmpfs)", i, v.Type)
		}
		out = append(out, m)
	}
	return out, nil
}
