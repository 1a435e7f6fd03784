// node-gyp-build ships no types: it returns whatever the addon exports.
declare module 'node-gyp-build' {
  function load(directory: string): any
  export = load
}
