// Video input: decoding with the system's ffmpeg and SmolVLM2's frame sampling (the frame processor is the
// SmolVLM family's, in src/models).
export { findFfmpeg, probeVideo, decodeFrames, type VideoInfo, type DecodedFrame } from './ffmpeg.js';
export { sampleFrameIndices, linspaceInt, pythonRound, type VideoMeta, type VideoSampling } from './sample.js';
export { loadVideo, type LoadedVideo, type LoadVideoOptions } from './load.js';
