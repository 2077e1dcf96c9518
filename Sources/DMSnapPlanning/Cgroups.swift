import DMSnapModel

/// The cgroups a take freezes (`--freeze-cgroup`, `--freeze-unit`): checked before any change.
extension Planner {
    static func cgroupsToFreeze(_ request: TakeRequest, _ view: KernelView) throws(PlanError) -> [String] {
        var out: [String] = []
        func check(_ given: String, _ facts: Result<CgroupFacts, LookupFailure>?) throws(PlanError) -> String {
            switch facts {
            case let .success(f)?:
                if f.isRoot { throw PlanError(given, "is the root cgroup: it cannot be frozen (give the application's own cgroup)") }
                guard f.hasFreezer else {
                    throw PlanError(given, "not a cgroup v2 directory with a freezer (no cgroup.freeze; cgroup v1 is not supported)")
                }
                if f.holdsSelf { throw PlanError(given, "holds dmsnap itself: freezing it would stop the take (run dmsnap from another cgroup)") }
                return f.path
            case let .failure(e)?: throw PlanError(given, "no such cgroup directory (\(e))")
            case nil: throw PlanError(given, "cgroup not looked up")
            }
        }
        for path in request.cgroups { out.append(try check(path, view.cgroups[path])) }
        for unit in request.units {
            guard let cg = view.units[unit] else {
                throw PlanError(unit, "no such unit: no cgroup of that name under the cgroup2 mount (is it running?)")
            }
            let path = try check(unit, view.cgroups[cg])
            if case let .success(f)? = view.cgroups[cg], f.processes == 0 {
                throw PlanError(unit, "is not running (its cgroup \(cg) has no processes)")
            }
            out.append(path)
        }
        var seen: Set<String> = []
        return out.filter { seen.insert($0).inserted }
    }
}
