package ring

import "slices"

// place computes, for every partition, which members are its replicas:
// in[p*n+i] reports whether member i (index into the ID-sorted members)
// replicates partition p. costs is cost[p*n+i]; zones[i] is member i's zone
// index, nzones the number of distinct zones.
func place(n, parts, replicas int, costs []uint64, zones []int, nzones int) ([]bool, error) {
	if replicas >= n {
		in := make([]bool, parts*n)
		for i := range in {
			in[i] = true
		}
		return in, nil
	}
	if nzones == 1 {
		return placeInZone(n, parts, costs, uniform(parts, replicas))
	}

	// Members of each zone, in index (ID) order.
	zoneMembers := make([][]int, nzones)
	for i, z := range zones {
		zoneMembers[z] = append(zoneMembers[z], i)
	}
	// perZone[p*nzones+z]: how many replicas partition p takes from zone z.
	perZone, err := placeZones(parts, replicas, costs, n, zoneMembers)
	if err != nil {
		return nil, err
	}

	in := make([]bool, parts*n)
	for z, members := range zoneMembers {
		m := len(members)
		demand := make([]int, parts)
		sub := make([]uint64, parts*m)
		for p := 0; p < parts; p++ {
			demand[p] = perZone[p*nzones+z]
			for j, i := range members {
				sub[p*m+j] = costs[p*n+i]
			}
		}
		zin, err := placeInZone(m, parts, sub, demand)
		if err != nil {
			return nil, err
		}
		for p := 0; p < parts; p++ {
			for j, i := range members {
				in[p*n+i] = zin[p*m+j]
			}
		}
	}
	return in, nil
}

// placeInZone chooses demand[p] of the m members of one zone for every
// partition, giving every member the same number of slots, give or take
// one.
func placeInZone(m, parts int, costs []uint64, demand []int) ([]bool, error) {
	total := 0
	for _, d := range demand {
		total += d
	}
	lo, hi := make([]int, m), make([]int, m)
	for i := range lo {
		lo[i] = total / m
		hi[i] = (total + m - 1) / m
	}
	return assign(m, parts, costs, demand, lo, hi)
}

// placeZones decides how many of each partition's replicas come from each
// zone, so that every partition spans min(replicas, zones) zones and each
// zone's share of all slots is proportional to its number of members as far
// as the spread rule allows. Zones compete for partitions with the cost of
// their cheapest members, so a zone tends to win the partitions its own
// members would win anyway: the node level then needs few extra moves.
func placeZones(parts, replicas int, costs []uint64, n int, zoneMembers [][]int) ([]int, error) {
	nz := len(zoneMembers)
	weight := make([]int, nz)
	for z, members := range zoneMembers {
		weight[z] = len(members)
	}
	perZone := make([]int, parts*nz)
	total := parts * replicas

	if nz >= replicas {
		// Each partition takes `replicas` distinct zones, at most once each.
		minv, maxv := make([]int, nz), make([]int, nz)
		for z := range maxv {
			maxv[z] = parts
		}
		lo, hi := shareBounds(total, weight, minv, maxv)
		zcost := make([]uint64, parts*nz)
		for p := 0; p < parts; p++ {
			for z, members := range zoneMembers {
				best := costs[p*n+members[0]]
				for _, i := range members[1:] {
					best = min(best, costs[p*n+i])
				}
				zcost[p*nz+z] = best
			}
		}
		in, err := assign(nz, parts, zcost, uniform(parts, replicas), lo, hi)
		if err != nil {
			return nil, err
		}
		for i, held := range in {
			if held {
				perZone[i] = 1
			}
		}
		return perZone, nil
	}

	// Fewer zones than replicas: every partition takes every zone once, and
	// the remaining replicas-nz slots go to "extra" items: the t-th extra of
	// zone z (t = 1, 2, ...) stands for the zone's (t+1)-th member in the
	// partition and costs what that member costs, so second and third
	// replicas in a zone go where the zone's members score well.
	extras := replicas - nz
	minv, maxv := make([]int, nz), make([]int, nz)
	for z := range minv {
		minv[z] = parts
		maxv[z] = parts * min(weight[z], extras+1)
	}
	zlo, zhi := shareBounds(total, weight, minv, maxv)

	type extra struct{ zone, rank int }
	var items []extra
	var lo, hi []int
	for z := range zoneMembers {
		m := min(weight[z]-1, extras)
		for t := 1; t <= m; t++ {
			items = append(items, extra{z, t})
			lo = append(lo, (zlo[z]-parts)/m)
			hi = append(hi, min(parts, (zhi[z]-parts+m-1)/m))
		}
	}
	k := len(items)
	xcost := make([]uint64, parts*k)
	ranked := make([]uint64, 0, n)
	for p := 0; p < parts; p++ {
		for z, members := range zoneMembers {
			if len(members) < 2 {
				continue
			}
			ranked = ranked[:0]
			for _, i := range members {
				ranked = append(ranked, costs[p*n+i])
			}
			slices.Sort(ranked)
			for x, it := range items {
				if it.zone == z {
					xcost[p*k+x] = ranked[it.rank]
				}
			}
		}
	}
	in, err := assign(k, parts, xcost, uniform(parts, extras), lo, hi)
	if err != nil {
		return nil, err
	}
	for p := 0; p < parts; p++ {
		for z := 0; z < nz; z++ {
			perZone[p*nz+z] = 1
		}
		for x, it := range items {
			if in[p*k+x] {
				perZone[p*nz+it.zone]++
			}
		}
	}
	return perZone, nil
}

func uniform(parts, d int) []int {
	demand := make([]int, parts)
	for p := range demand {
		demand[p] = d
	}
	return demand
}
