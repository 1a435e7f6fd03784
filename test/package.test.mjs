// The package as it is published and documented: self-contained design
// notes, types for every entry point under every TypeScript resolution, and
// what npm pack must carry. (.ci/run and scripts/pack-smoke.sh check the
// packed tarball itself, installed where there is no compiler.)
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { root } from './lib/helpers.mjs'

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

/** The repository's own text files (what git tracks, give or take): no dependencies, no build output. */
function* sourceFiles(dir = root) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (['node_modules', '.git', 'build', 'dist', 'prebuilds', '.tap'].includes(entry.name)) continue
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) yield* sourceFiles(file)
    else if (/\.(md|mjs|js|ts|cc|h|c|sh|json|gyp|txt)$|^run$/.test(entry.name) && entry.name !== 'package-lock.json') yield file
  }
}

t.test('the design notes are in the repository: nothing points at notes outside it', async (t) => {
  const outside = /\bDESIGN\.md\b|\/work\/shared|\bSTYLE\.md\b|\bPEERS\.md\b/
  for (const file of sourceFiles()) {
    const text = fs.readFileSync(file, 'utf8')
    const line = text.split('\n').findIndex((l) => outside.test(l))
    t.equal(line, -1, `${path.relative(root, file)}${line >= 0 ? `:${line + 1}: ${text.split('\n')[line].trim()}` : ''}`)
  }
  const architecture = fs.readFileSync(path.join(root, 'ARCHITECTURE.md'), 'utf8')
  for (const section of ['Layers', 'The ring contract', 'Backpressure', 'Accounting', 'Threads', 'Lifetime']) {
    t.match(architecture, new RegExp(`^## \\d+\\. ${section}`, 'm'), `ARCHITECTURE.md: ${section}`)
  }
  t.match(architecture, 'received + kernelDrops + discarded === sent')
})

t.test('every subpath with types resolves under the classic node resolution too (typesVersions)', async (t) => {
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    if (typeof target !== 'object' || !target.types) continue
    t.ok(fs.existsSync(path.join(root, target.types)), `${subpath}: ${target.types} exists`)
    if (subpath === '.') {
      t.equal(path.normalize(pkg.types), path.normalize(target.types), '"types" is the root export\'s')
      continue
    }
    const mapped = pkg.typesVersions?.['*']?.[subpath.slice(2)]
    t.ok(Array.isArray(mapped), `typesVersions maps ${subpath}`)
    if (Array.isArray(mapped)) t.equal(path.normalize(mapped[0]), path.normalize(target.types), `${subpath}: the same declarations`)
  }
})

t.test('npm pack carries both prebuilds: prepack builds them, and files lists them', async (t) => {
  t.ok(pkg.files.includes('prebuilds/'), 'files has prebuilds/')
  t.match(pkg.scripts.prepack, /scripts\/prebuilds\.sh/, 'prepack builds the prebuilds')
  t.notOk('prebuild' in pkg.scripts, 'no script named prebuild: npm would run it before every npm run build')
  t.equal(pkg.scripts.install, 'node-gyp-build', 'install loads a prebuild before compiling')
})
