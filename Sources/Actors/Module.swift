// Placeholder file so the module builds until its issue lands; it declares nothing public.
enum _KyotoActorsModuleMarker {}
