package env

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
)

// LabelOwner marks what one user's state folder built: an env's name is
// unique only there, and the engine is shared.
const LabelOwner = "io.pgbenchx.owner"

// ownerOf is the owner label of what store's envs build: the user and
// their state folder.
func ownerOf(store Store) string {
	sum := sha256.Sum256([]byte(store.Dir))
	return fmt.Sprintf("%d-%x", os.Getuid(), sum[:6])
}

// clearStale makes room for env name: refused while its builder runs or
// while it is up (its containers there, whatever they are doing) or when
// another owner's containers carry the name; a dead run's leftovers and
// state are removed.
func (d *Docker) clearStale(ctx context.Context, cli *client.Client, name, owner string) error {
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", LabelEnv+"="+name)})
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	for _, ct := range cs.Items {
		if ct.Labels[LabelOwner] != owner {
			return fmt.Errorf("env %q: containers of that name belong to another user or state folder (%s): choose another --name", name, strings.Join(ct.Names, ","))
		}
	}
	old, err := d.Store.Load(name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	case old.Provider != DockerName:
		return fmt.Errorf("env %q is a %s env: pgbenchx env down --name %s first, or choose another --name", name, old.Provider, name)
	case old.Status == statusBuilding && old.OwnerPID != os.Getpid() && processAlive(old.OwnerPID):
		return fmt.Errorf("env %q is being built by pid %d; wait for it or choose another --name", name, old.OwnerPID)
	case old.Status == statusReady && dockerAllThere(ctx, cli, old):
		return &ExistsError{Name: name}
	}
	// What a dead run of this name left: containers, volumes, network.
	if err := removeByLabel(ctx, cli, name, owner); err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(d.Store.Dir, name+".link"))
	if err := d.Store.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// removeByLabel removes an env's containers (with their anonymous
// volumes), volumes and network: all that carries its label and owner,
// whatever state a run left it in.
func removeByLabel(ctx context.Context, cli *client.Client, env, owner string) error {
	f := client.Filters{}.Add("label", LabelEnv+"="+env, LabelOwner+"="+owner)
	var errs []error
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	for _, ct := range cs.Items {
		if _, err := cli.ContainerRemove(ctx, ct.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("docker: container %s: %w", strings.Join(ct.Names, ","), err))
		}
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	for _, v := range vs.Items {
		if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
			errs = append(errs, fmt.Errorf("docker: volume %s: %w", v.Name, err))
		}
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	for _, n := range ns.Items {
		if _, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("docker: network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}
