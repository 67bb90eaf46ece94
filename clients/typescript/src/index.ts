// The package's entry point: every operation as a typed function (`signupUser`, `getMe`, ...),
// every schema and per-operation type, and the client they share (`client.setConfig`), all
// generated into ./gen by `make client`. Hand-written: only this file.
export * from './gen/index.js';
export { client } from './gen/client.gen.js';
export { createClient, createConfig } from './gen/client/index.js';
export type { Client, ClientOptions, Config, RequestResult } from './gen/client/index.js';
