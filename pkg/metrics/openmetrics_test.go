package metrics

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hactl/hactl/pkg/verify"
)

func TestWrite(t *testing.T) {
	no := false
	vips := []verify.VIPState{
		{VIP: "198.18.0.201/24", Cluster: "lab", Master: "lab1", Holders: []string{"lab1", "lab3"}, State: verify.StateSplit},
		{VIP: "198.18.0.202/24", Cluster: "lab", Master: "lab2", Holders: []string{"lab2"}, State: verify.StateOK},
		{VIP: "198.18.0.203/24", Cluster: "lab", Master: "lab3", Holders: []string{}, State: verify.StateMissing},
	}
	var b bytes.Buffer
	if err := Write(&b, vips, []Host{{Name: "lab1", Reachable: true, Drained: &no}, {Name: "lab2"}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`hactl_vip_holders{cluster="lab",vip="198.18.0.201/24",master="lab1"} 2`,
		`hactl_vip_split_brain{cluster="lab",vip="198.18.0.201/24",master="lab1"} 1`,
		`hactl_vip_on_master{cluster="lab",vip="198.18.0.202/24",master="lab2"} 1`,
		`hactl_vip_holders{cluster="lab",vip="198.18.0.203/24",master="lab3"} 0`,
		`hactl_vip_state{cluster="lab",vip="198.18.0.203/24",master="lab3",hactl_vip_state="missing"} 1`,
		`hactl_host_reachable{host="lab2"} 0`,
		`hactl_host_drained{host="lab1"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
	if strings.Contains(out, `hactl_host_drained{host="lab2"}`) {
		t.Error("an unread drained state must not be reported as a value")
	}
	if !strings.HasSuffix(out, "# EOF\n") {
		t.Error("OpenMetrics text must end with # EOF")
	}
}
