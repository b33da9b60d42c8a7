/* Settings page of the mailbundle-change-password plugin (see index.php). */
(rl => {
	if (!rl) return;

	class MailbundleChangePasswordSettings {
		constructor() {
			this.currentPassword = ko.observable('');
			this.newPassword = ko.observable('');
			this.newPassword2 = ko.observable('');
			this.status = ko.observable('');
			this.failed = ko.observable(false);
			this.saving = ko.observable(false);
		}

		submitForm() {
			this.failed(false);
			if (this.newPassword() !== this.newPassword2()) {
				this.failed(true);
				this.status('The two new passwords differ.');
				return;
			}
			this.saving(true);
			this.status('');
			rl.pluginRemoteRequest((error, data) => {
				this.saving(false);
				if (error) {
					this.failed(true);
					this.status((data && (data.messageAdditional || data.message))
						|| 'The password was not changed.');
				} else {
					this.currentPassword('');
					this.newPassword('');
					this.newPassword2('');
					this.status('The password was changed.');
				}
			}, 'MailbundleChangePassword', {
				PrevPassword: this.currentPassword(),
				NewPassword: this.newPassword()
			});
		}

		onHide() {
			this.currentPassword('');
			this.newPassword('');
			this.newPassword2('');
			this.status('');
			this.failed(false);
		}
	}

	rl.addSettingsViewModel(MailbundleChangePasswordSettings,
		'MailbundleChangePasswordSettings', 'GLOBAL/PASSWORD', 'password');
})(window.rl);
