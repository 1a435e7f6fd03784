// The `dgram-ring` command. `listen` (lib/cli/) writes every datagram it
// receives as one JSON line on stdout; `bench` runs the loopback benchmark
// that the package carries.
// Exit codes: 0 done (including a reader that went away, as `| head` does),
// 1 a system error, 2 a bad command line.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { UsageError, USAGE_CODES, inFlagTerms } from './cli/flags'
import { listenCommand } from './cli/listen'

const HELP = `Usage: dgram-ring <command> [options]

Commands:
  listen   Receive UDP datagrams and write each as one JSON line on stdout
  bench    Run the loopback benchmark (needs a C compiler for its sender);
           arguments after "bench" are passed to it (try: dgram-ring bench --help)

Options:
  -h, --help     Show this help (dgram-ring listen --help: the listen options)
  -V, --version  Show the version

Exit status: 0 done, 1 system error (address in use, ...), 2 bad command line.
`

function benchCommand(args: readonly string[]): Promise<number> {
  const script = path.join(__dirname, '..', 'bench', 'run.mjs')
  if (!fs.existsSync(script)) {
    throw new Error(`bench needs ${script}, which this installation of dgram-ring lacks: reinstall it`)
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit' })
    // Stay alive until the benchmark has printed its results, and pass signals on to it.
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal)
    process.on('SIGINT', forward)
    process.on('SIGTERM', forward)
    const done = (): void => {
      process.off('SIGINT', forward)
      process.off('SIGTERM', forward)
    }
    child.on('error', (error) => {
      done()
      reject(error)
    })
    child.on('exit', (code, signal) => {
      done()
      resolve(code ?? 128 + (signal === null ? 0 : os.constants.signals[signal]))
    })
  })
}

function version(): string {
  const manifest: unknown = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'))
  const value = typeof manifest === 'object' && manifest !== null ? (manifest as { version?: unknown }).version : undefined
  if (typeof value !== 'string') throw new Error('package.json has no version')
  return value
}

async function run(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'listen':
      return listenCommand(rest)
    case 'bench':
      return benchCommand(rest)
    case '-h':
    case '--help':
      process.stdout.write(HELP)
      return 0
    case '-V':
    case '--version':
      process.stdout.write(`${version()}\n`)
      return 0
    case undefined:
      throw new UsageError('missing command: listen or bench (see dgram-ring --help)')
    default:
      throw new UsageError(
        command.startsWith('-') ? `unknown option '${command}' (see dgram-ring --help)` : `unknown command '${command}' (see dgram-ring --help)`,
      )
  }
}

/**
 * Runs the `dgram-ring` command line with `argv` (the arguments after the
 * script name) on this process's stdio and signals, and resolves with the exit
 * status: 0 done, 1 a system error, 2 a bad command line. Errors are reported
 * on stderr as one `dgram-ring: …` line; the promise never rejects.
 *
 * @example
 * main(process.argv.slice(2)).then((code) => { process.exitCode = code })
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await run(argv)
  } catch (error) {
    const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined
    const usage = error instanceof UsageError || USAGE_CODES.has(code)
    // One line, whatever the error: scripts read stderr line by line.
    const message = inFlagTerms(error instanceof Error ? error.message : String(error)).split('\n')[0]
    process.stderr.write(`dgram-ring: ${message}\n`)
    return usage ? 2 : 1
  }
}
