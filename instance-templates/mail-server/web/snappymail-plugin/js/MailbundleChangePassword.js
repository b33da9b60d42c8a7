/* Settings page of the mailbundle-change-password plugin (see index.php). */
(rl => {
	if (!rl) return;

	class MailbundleChangePasswordSettings {
		constructor() {
			this.currentPassword = ko.observable('');
			this.newPassword = ko.observable('');
			this.newPassword2 = ko.observable('');
			this.status = ko.observable('');
			this.saving = ko.observable(false);
		}

		submitForm() {
			if (this.newPassword() !== this.newPassword2()) {
				this.status('The two new passwords differ.');
				return;
			}
			this.saving(true);
			this.status('');
			rl.pluginRemoteRequest((error, data) => {
				this.saving(false);
				if (error) {
					this.status((data && (data.ErrorMessageAdditional || data.ErrorMessage))
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
	}

	rl.addSettingsViewModel(MailbundleChangePasswordSettings,
		'MailbundleChangePasswordSettings', 'Password', 'password');
})(window.rl);
