'use strict';
// N-API, so one build serves Node and Electron alike.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS entry loading a native addon
module.exports = require('./build/Release/hitch_native.node');
