// Kyoto: the umbrella module. `import Kyoto` brings in the runtime, the sync primitives, the channels
// and (once it has an API) the actor layer.

@_exported import KyotoActors
@_exported import KyotoChannels
@_exported import KyotoExecutor
@_exported import KyotoSync
