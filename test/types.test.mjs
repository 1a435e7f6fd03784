// The public API's types: test/types/api.ts must compile against the emitted
// declarations, and each of its @ts-expect-error lines must be an error.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { root } from './lib/helpers.mjs'

t.test('the public API type-checks as users write it', async (t) => {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  let output = ''
  try {
    output = execFileSync(process.execPath, [tsc, '-p', path.join(root, 'test', 'types', 'tsconfig.json')], { encoding: 'utf8' })
  } catch (error) {
    output = `${error.stdout}${error.stderr}`
  }
  t.equal(output.trim(), '', 'no type errors, no unused @ts-expect-error')
})
