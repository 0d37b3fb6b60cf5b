// safetensors reader (strict header validation before any tensor byte is read) and writer.
//
// Format: 8-byte little-endian u64 N, then N bytes of JSON header
//   { "__metadata__"?: {str: str}, name: { dtype, shape, data_offsets: [begin, end] }, ... }
// then the byte buffer; offsets are relative to the start of the buffer (8 + N).
// Validation follows the reference Rust implementation: spans must tile the buffer
// exactly (sorted, no gap, no overlap, last end == buffer length).
import type { ModelSource } from './source.ts';
import { bytesToFloat32, DTYPE_BYTES, float32ToBytes, type SupportedDtype } from './dtype.ts';
import { LorafleetError } from '../../shaders/lib/errors.ts';

export type { SupportedDtype } from './dtype.ts';

export class SafetensorsError extends LorafleetError {
  constructor(
    message: string,
    readonly fileName: string,
    readonly tensorName?: string,
  ) {
    super(message, 'model_invalid');
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  name: string;
  dtype: SupportedDtype;
  shape: number[];
  /** Absolute byte range in the file: [start, end). */
  start: number;
  end: number;
  /** File this tensor lives in (shard name). */
  file: string;
}

export interface SafetensorsHeader {
  file: string;
  headerLength: number;
  /** Absolute offset where the byte buffer begins (8 + headerLength). */
  dataStart: number;
  fileSize: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

/** Header JSON larger than this is rejected (same limit as the Rust crate: 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

const KNOWN_UNSUPPORTED = ['F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64'];

/** Read the 8-byte length prefix. */
export function parseHeaderLength(prefix: Uint8Array, fileName: string, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(`${fileName}: file is ${fileSize} bytes, too short for a safetensors header`, fileName);
  }
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`${fileName}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`, fileName);
  }
  const len = Number(n);
  if (len < 2) throw new SafetensorsError(`${fileName}: header length ${len} is too small`, fileName);
  if (8 + len > fileSize) {
    throw new SafetensorsError(`${fileName}: header length ${len} runs past the end of the ${fileSize}-byte file (truncated?)`, fileName);
  }
  return len;
}

/**
 * Validate a parsed header. `headerBytes` is the JSON text (N bytes after the prefix).
 * Throws SafetensorsError naming the file and tensor.
 */
export function parseHeader(headerBytes: Uint8Array, fileName: string, fileSize: number): SafetensorsHeader {
  const headerLength = headerBytes.byteLength;
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new SafetensorsError(`${fileName}: header is not valid UTF-8 JSON (${(e as Error).message})`, fileName);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(`${fileName}: header must be a JSON object`, fileName);
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    const bad = (msg: string): never => {
      throw new SafetensorsError(`${fileName}: tensor "${name}": ${msg}`, fileName, name);
    };
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        throw new SafetensorsError(`${fileName}: __metadata__ must be an object of strings`, fileName);
      }
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw new SafetensorsError(`${fileName}: __metadata__.${k} must be a string`, fileName);
        metadata[k] = s;
      }
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('entry must be an object');
    const e = v as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== 'string') bad('missing dtype');
    if (!((dtype as string) in DTYPE_BYTES)) {
      const known = KNOWN_UNSUPPORTED.includes(dtype as string);
      bad(`dtype ${dtype} is ${known ? 'not supported' : 'unknown'} (supported: F32, F16, BF16)${known ? '; quantised or integer checkpoints must be converted first' : ''}`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad(`shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad(`data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offs)}`);
    }
    const [b, en] = offs as [number, number];
    if (en < b) bad(`data_offsets [${b}, ${en}] end before begin`);
    const numel = (shape as number[]).reduce((a, d) => a * d, 1);
    const expectBytes = numel * DTYPE_BYTES[dtype as SupportedDtype];
    if (en - b !== expectBytes) {
      bad(`shape [${(shape as number[]).join(', ')}] × ${dtype} needs ${expectBytes} bytes but data_offsets [${b}, ${en}] span ${en - b}`);
    }
    if (en > dataSize) {
      bad(`data_offsets [${b}, ${en}] run past the end of the data (${dataSize} bytes; file truncated?)`);
    }
    tensors.set(name, {
      name,
      dtype: dtype as SupportedDtype,
      shape: [...(shape as number[])],
      start: dataStart + b,
      end: dataStart + en,
      file: fileName,
    });
  }
  // Spans must tile the data buffer: sorted, no overlap, no hole, nothing after.
  const sorted = [...tensors.values()].sort((x, y) => x.start - y.start || x.end - y.end);
  let pos = dataStart;
  let prev: TensorInfo | undefined;
  for (const t of sorted) {
    if (t.start < pos) {
      throw new SafetensorsError(
        `${fileName}: tensor "${t.name}" bytes [${t.start - dataStart}, ${t.end - dataStart}) overlap tensor "${prev!.name}" [${prev!.start - dataStart}, ${prev!.end - dataStart})`,
        fileName,
        t.name,
      );
    }
    if (t.start > pos) {
      throw new SafetensorsError(
        `${fileName}: gap of ${t.start - pos} bytes before tensor "${t.name}" (data_offsets do not tile the buffer)`,
        fileName,
        t.name,
      );
    }
    pos = t.end;
    prev = t;
  }
  if (pos !== fileSize) {
    throw new SafetensorsError(
      `${fileName}: tensors cover ${pos - dataStart} bytes of data but the file holds ${dataSize} (trailing bytes or wrong offsets)`,
      fileName,
    );
  }
  return { file: fileName, headerLength, dataStart, fileSize, metadata, tensors };
}

/** Parse a complete safetensors file held in memory. */
export function parseSafetensorsBuffer(bytes: Uint8Array, fileName = 'model.safetensors'): SafetensorsHeader {
  const n = parseHeaderLength(bytes.subarray(0, 8), fileName, bytes.byteLength);
  return parseHeader(bytes.subarray(8, 8 + n), fileName, bytes.byteLength);
}

/** Read and validate a header through a ModelSource (reads only the header bytes). */
export async function readSafetensorsHeader(source: ModelSource, file: string): Promise<SafetensorsHeader> {
  const fileSize = await source.size(file);
  const prefix = await source.readBytes(file, 0, Math.min(8, fileSize));
  const n = parseHeaderLength(prefix, file, fileSize);
  const hb = await source.readBytes(file, 8, 8 + n);
  if (hb.byteLength !== n) throw new SafetensorsError(`${file}: short read of header (${hb.byteLength} of ${n} bytes)`, file);
  return parseHeader(hb, file, fileSize);
}

/** Raw little-endian bytes of one tensor (a copy owned by the caller). */
export async function readTensorRaw(source: ModelSource, info: TensorInfo): Promise<Uint8Array> {
  const b = await source.readBytes(info.file, info.start, info.end);
  if (b.byteLength !== info.end - info.start) {
    throw new SafetensorsError(`${info.file}: short read of tensor "${info.name}" (${b.byteLength} of ${info.end - info.start} bytes)`, info.file, info.name);
  }
  return b;
}

/** One tensor as Float32Array (F16/BF16 converted exactly). */
export async function readTensorF32(source: ModelSource, info: TensorInfo): Promise<Float32Array> {
  return bytesToFloat32(await readTensorRaw(source, info), info.dtype);
}

export interface ShardedIndex {
  /** Tensor name → TensorInfo, across all shards. */
  tensors: Map<string, TensorInfo>;
  /** Files that were read (one, or the shards of an index). */
  files: string[];
  metadata: Record<string, string>;
}

/**
 * Open the weights of a model: `model.safetensors`, or `model.safetensors.index.json`
 * (weight_map: tensor → shard file). Every header is validated; a tensor listed in the
 * index but absent from its shard (or found in a different shard) is an error.
 */
export async function openSafetensors(source: ModelSource, opts: { single?: string; index?: string } = {}): Promise<ShardedIndex> {
  const single = opts.single ?? 'model.safetensors';
  const indexFile = opts.index ?? 'model.safetensors.index.json';
  if (await source.exists(single)) {
    const h = await readSafetensorsHeader(source, single);
    return { tensors: h.tensors, files: [single], metadata: h.metadata };
  }
  if (!(await source.exists(indexFile))) {
    throw new SafetensorsError(`${source.name}: neither ${single} nor ${indexFile} found`, single);
  }
  const idx = (await source.readJson(indexFile)) as { weight_map?: Record<string, string>; metadata?: unknown };
  if (typeof idx !== 'object' || idx === null || typeof idx.weight_map !== 'object' || idx.weight_map === null) {
    throw new SafetensorsError(`${indexFile}: missing weight_map`, indexFile);
  }
  const weightMap = idx.weight_map;
  const shardFiles = [...new Set(Object.values(weightMap))];
  for (const f of shardFiles) {
    if (typeof f !== 'string' || f.includes('..') || f.startsWith('/')) {
      throw new SafetensorsError(`${indexFile}: bad shard file name ${JSON.stringify(f)}`, indexFile);
    }
  }
  const tensors = new Map<string, TensorInfo>();
  const metadata: Record<string, string> = {};
  for (const f of shardFiles.sort()) {
    const h = await readSafetensorsHeader(source, f);
    Object.assign(metadata, h.metadata);
    for (const [name, t] of h.tensors) {
      if (weightMap[name] !== f) {
        throw new SafetensorsError(
          `${f}: tensor "${name}" is in this shard but ${indexFile} maps it to ${JSON.stringify(weightMap[name] ?? null)}`,
          f,
          name,
        );
      }
      tensors.set(name, t);
    }
  }
  for (const [name, f] of Object.entries(weightMap)) {
    if (!tensors.has(name)) {
      throw new SafetensorsError(`${f}: tensor "${name}" is listed in ${indexFile} but missing from the shard`, f, name);
    }
  }
  return { tensors, files: shardFiles, metadata };
}

// ---------------------------------------------------------------- writer

export interface TensorToWrite {
  dtype: SupportedDtype;
  shape: number[];
  /** Numbers (converted to dtype, round-to-nearest-even), or raw little-endian bytes already in dtype. */
  data: ArrayLike<number> | Uint8Array;
}

/**
 * Serialise tensors to a safetensors file (insertion order; header padded with spaces
 * to a multiple of 8 bytes, like the Python writer, so F32 data is 4-byte aligned).
 * A Uint8Array `data` is taken as raw bytes; any other array-like as values.
 */
export interface TensorSpec {
  name: string;
  dtype: SupportedDtype;
  shape: number[];
}

/**
 * The first bytes of a safetensors file for tensors laid out back to back in the given order:
 * 8-byte length + JSON padded with spaces to a multiple of 8 (like the Python writer, so F32
 * data stays 4-byte aligned). Lets a writer stream tensor data after it.
 */
export function encodeSafetensorsHeader(specs: TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const t of specs) {
    if (!(t.dtype in DTYPE_BYTES)) throw new Error(`writeSafetensors: tensor "${t.name}": unsupported dtype ${t.dtype}`);
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw new Error(`writeSafetensors: duplicate or reserved tensor name "${t.name}"`);
    const n = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Bytes of one tensor in its dtype (a Uint8Array is taken as raw bytes), checked against its shape. */
export function encodeTensorData(name: string, t: TensorToWrite): Uint8Array {
  const numel = t.shape.reduce((a, d) => a * d, 1);
  const bytes = t.data instanceof Uint8Array ? t.data : float32ToBytes(t.data, t.dtype);
  if (bytes.byteLength !== numel * DTYPE_BYTES[t.dtype]) {
    throw new Error(
      `writeSafetensors: tensor "${name}": shape [${t.shape.join(', ')}] × ${t.dtype} needs ${numel * DTYPE_BYTES[t.dtype]} bytes, data has ${bytes.byteLength}`,
    );
  }
  return bytes;
}

/**
 * Serialise tensors to a safetensors file (insertion order). A Uint8Array `data` is taken
 * as raw bytes in `dtype`; any other array-like as values (rounded to nearest even).
 */
export function writeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const entries = Object.entries(tensors);
  const head = encodeSafetensorsHeader(
    entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    metadata,
  );
  const chunks = entries.map(([name, t]) => encodeTensorData(name, t));
  const out = new Uint8Array(head.byteLength + chunks.reduce((a, c) => a + c.byteLength, 0));
  out.set(head, 0);
  let pos = head.byteLength;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}
