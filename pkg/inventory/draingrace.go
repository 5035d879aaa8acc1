package inventory

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// MaxDrainGrace bounds drain_grace, like a cloud load balancer's
// deregistration delay (AWS: 0–3600 s): a drain must end.
const MaxDrainGrace = time.Hour

// setDrainGrace reads drain_grace (seconds; 0, the default, keeps no
// connection when a VIP moves).
func setDrainGrace(c *Cluster, v *float64) hcl.Diagnostics {
	if v == nil {
		return nil
	}
	if math.IsNaN(*v) || *v < 0 || *v > MaxDrainGrace.Seconds() {
		return hcl.Diagnostics{errAt(c.Range("drain_grace"), "Invalid drain_grace",
			fmt.Sprintf("drain_grace = %v: write the seconds a drain keeps the old holder serving its open connections, 0 to %v.", *v, MaxDrainGrace.Seconds()))}
	}
	c.DrainGrace = time.Duration(*v * float64(time.Second))
	return nil
}
