// The DMSnap library: what a Swift program imports to take, inspect, merge and discard snapshot
// sets. It runs plans against the kernel (`Executor`), reads the kernel view the planner decides
// from (`KernelView.read`), and fronts it all with `SnapshotManager`. The layers below are
// re-exported so `import DMSnap` is all a user needs:
//   DMSnapModel (values), DMSnapPlanning (the pure planner), DMSnapKernel (the kernel),
//   DMSnapStore (set descriptions on disk, the command lock).
@_exported import DMSnapKernel
@_exported import DMSnapModel
@_exported import DMSnapPlanning
@_exported import DMSnapStore
