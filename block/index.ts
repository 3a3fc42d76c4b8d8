/**
 * block/: the transformer block as one native op (issue 14) — ring/'s attention between native/'s
 * block halves, with a backward that recomputes from the block's input (in query chunks for long
 * blockwise sequences: chunked-backward.ts). Above ring/ and native/: the paper's core stays
 * readable without the fast path, and models (rl/, lm/) call `transformerBlock` from here.
 */

export { chunkedBackwardCount } from './chunked-backward.js';
export { nativeBlockCount, transformerBlock, transformerBlockIsNative } from './native-block.js';
