// The V8 flags a process that runs the engine starts with. Kept apart, with no imports, so that
// whatever starts an engine (the CLI, the benchmark, test fixtures) can read them.

/**
 * Node's flags for the engine's process (`hitch daemon`, the web host, and Electron's main
 * process through `--js-flags` where it is started by scripts/start.sh or the Linux desktop
 * entry; package.json and build/electron-builder.yml repeat them, and
 * tests/unit/node-flags.test.ts holds them equal).
 * - `--max-semi-space-size=2`: its young generation is held to two 2 MB semi-spaces. Left to
 *   itself V8 doubles them under a steady stream of sessions (each control-socket session
 *   allocates ~85 kB), up to two of 16 MB, and the engine's RSS rises by ~20 MB over its first
 *   thousands of sessions and stays there. Objects that outlive a session reach the old
 *   generation sooner, which is sized from what is live.
 * - `--initial-old-space-size=64`: the old generation may reach 64 MB before V8 starts a full
 *   collection. V8 counts the buffers Node reads sockets into against that limit, and sized
 *   from what is live (~15 MB) it left ~10 MB: a 256 MiB download ran 12–26 full collections
 *   in `hitch daemon`, their marking threads taking the core sshd needs. With 64 MB the young
 *   collections free those buffers first: 0–1 full collections per download, and about half
 *   the engine's CPU per byte. It costs memory held between collections: +7 MB of RSS after
 *   four downloads, and a peak of ~110 MB against ~90 MB over 2,000 control-socket sessions
 *   (what is left after a full collection does not grow: +1.9 MB over 10,000).
 */
export const ENGINE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--initial-old-space-size=64'];
