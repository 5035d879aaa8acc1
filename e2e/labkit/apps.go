package labkit

import (
	"context"
	"fmt"
)

// App is one lab app server (an upstream of the balancers' sites): HTTP on
// 8080 and TCP on 5432, each answering with its name.
type App struct {
	Name string // app1, app2, …
	Addr string // 198.18.0.21, …
}

// Apps runs app servers app1..appM beside the lab's balancers (lab.sh apps
// M) and returns them; `down` removes them with the rest of the lab.
func (l *Lab) Apps(ctx context.Context, m int) ([]App, error) {
	if _, err := run(ctx, "apps", fmt.Sprint(m)); err != nil {
		return nil, err
	}
	apps := make([]App, m)
	for i := range apps {
		apps[i] = App{Name: fmt.Sprintf("app%d", i+1), Addr: fmt.Sprintf("198.18.0.%d", 21+i)}
	}
	return apps, nil
}

// StopApp stops an app server's responder (connections to it are refused;
// its address stays); StartApp starts it again.
func (l *Lab) StopApp(ctx context.Context, name string) error {
	_, err := run(ctx, "app", "stop", name)
	return err
}

// StartApp starts an app server stopped by StopApp.
func (l *Lab) StartApp(ctx context.Context, name string) error {
	_, err := run(ctx, "app", "start", name)
	return err
}
