// lorafleet router: the public surface (router/README.md). Runs in Node and in the browser; the
// training/ONNX-export side (build.ts, hashed.ts, onnx-build.ts, cli.ts) is Node only and not exported here.
export { loadRouter, loadEncoder, fetchSource, type FileSource } from './load.ts';
export { Router, NONE, type RouteDecision, type RouteFn, type RouteReason, type LabeledExample, type EvalReport, type FitReport } from './router.ts';
export { HashedEncoder, HfEncoder, RouterError, configureOrt, poolingFromConfig, type Encoder, type Pooling, type HfEncoderFiles } from './encoder.ts';
export { RouterFileSchema, RouteSchema, parseRouterFile, requestText, type RouterFile, type RouterFileInput, type Route, type ChatMessage, type EncoderSpec } from './schema.ts';
export { featurize, defaultFeatureSpec, type FeatureSpec } from './features.ts';
